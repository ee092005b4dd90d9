//go:build tools

// Package kubepeer is the wrapper module that test/peers/kube/build.sh builds the test control
// plane from: it only names the programs, so that `go mod tidy` pins their dependencies.
package kubepeer

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
