// Command coredns is upstream CoreDNS with the plugins the cluster's Corefile uses: the
// kubernetes plugin answers for cluster.local, the rest of the chain is health, readiness,
// errors, logging and caching. Other zones get NXDOMAIN/REFUSED: the machine has no upstream.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() {
	// Plugins run in upstream's order (dnsserver.Directives); only the ones imported above exist.
	coremain.Run()
}
