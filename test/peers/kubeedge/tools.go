//go:build tools

// Package kubeedgepeer is the wrapper module that test/peers/kubeedge/build.sh builds the Go
// KubeEdge test peer from: it only names the programs, so that `go mod tidy` pins their
// dependencies.
package kubeedgepeer

import (
	_ "github.com/kubeedge/kubeedge/cloud/cmd/cloudcore"
	_ "github.com/kubeedge/kubeedge/edge/cmd/edgecore"
)
