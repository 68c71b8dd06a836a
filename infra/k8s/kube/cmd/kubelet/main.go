// Command kubelet is the upstream kubelet, built from the k8s.io/kubernetes module for the
// single-node cluster (infra/cluster.sh).
package main

import (
	"context"
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
