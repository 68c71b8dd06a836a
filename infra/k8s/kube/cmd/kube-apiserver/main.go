// Command kube-apiserver is the upstream kube-apiserver, built from the k8s.io/kubernetes
// module so that the test harness (infra/k8s.sh) needs no download besides the Go module proxy.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
