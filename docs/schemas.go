// Package docs holds the documents the code needs at run time: the JSON Schemas of the MQTT
// messages (schemas/*.schema.json), which pipeline/wire checks every device message against.
package docs

import "embed"

// Schemas holds schemas/<kind>.schema.json.
//
//go:embed schemas/*.schema.json
var Schemas embed.FS
