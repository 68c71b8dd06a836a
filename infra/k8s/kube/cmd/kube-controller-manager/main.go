// Command kube-controller-manager is the upstream kube-controller-manager, built from the
// k8s.io/kubernetes module: it turns Deployments into ReplicaSets and Jobs into Pods, so the
// operator's tests see the same objects a real cluster would create.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
