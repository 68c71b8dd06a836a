// Command kube-scheduler is the upstream kube-scheduler, built from the k8s.io/kubernetes module
// for the single-node cluster (infra/cluster.sh).
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand()))
}
