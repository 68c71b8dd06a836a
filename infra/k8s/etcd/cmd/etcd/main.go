// Command etcd is the upstream etcd server, built from go.etcd.io/etcd/server/v3 in a module of
// its own so that its dependency versions never clash with the Kubernetes module's.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
