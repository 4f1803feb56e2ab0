//go:build tools

// Package build pins the module versions Vigil is built against (see ../shared/docs/DEPS.md),
// so that `go mod tidy` keeps them while a package that uses one is being written.
package build

import (
	_ "github.com/bluenviron/gortsplib/v4"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/yalue/onnxruntime_go"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
)
