// Command kube-proxy is the upstream kube-proxy, built from the k8s.io/kubernetes module for the
// single-node cluster (infra/cluster.sh).
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() {
	os.Exit(cli.Run(app.NewProxyCommand()))
}
