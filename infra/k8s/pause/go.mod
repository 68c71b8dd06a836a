// The pod sandbox ("pause") container of the single-node cluster (infra/cluster.sh): the
// machine cannot pull registry.k8s.io/pause, so the cluster builds its own.
module ordexa.io/infra/k8s/pause

go 1.26.0
