"""A single-node Kubernetes on this machine without a Docker engine: `make cluster CLUSTER=local`.

Debian's containerd + runc + CNI plugins + etcd; kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy, kubectl, CoreDNS, crictl and local-path-provisioner built
from the Go module proxy (tools.toolchain); images built with buildah and imported with ctr.
docs/cluster.md explains every part.

    python -m tools.cluster up|down|status|env|monitoring|chart-images

Modules: layout (paths, addresses), progress (terminal output), build (packages, binaries,
images), images (buildah/ctr), certs (openssl PKI, kubeconfigs), configs (config files, command
lines), processes (background processes), hoststate (record/restore the host), addons (CoreDNS,
storage), node (up/down/status), monitoring (prometheus-operator, Prometheus, kube-state-metrics
wired as kube-prometheus-stack: `make monitoring CLUSTER=local`).
"""
