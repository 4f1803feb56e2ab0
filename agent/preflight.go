package agent

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/publish"
)

// Preflight checks the settings that name files, which config.Validate (no I/O) cannot: every
// model's manifest loads and its model file exists, the MQTT TLS files load, and the OTA
// self-test image exists. Each error names its key. check-config runs it after Validate;
// vigil-agent doctor goes further (it opens the model and the cameras).
func Preflight(cfg config.Config) []error {
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("'%s' %v", key, err)) }
	checkModel := func(key string, mc config.Model) {
		man, err := models.LoadManifest(mc.Manifest)
		if err != nil {
			bad(key+".manifest", err)
			return
		}
		switch {
		case mc.Dir != "":
			man.Dir = mc.Dir
		case !exists(man.ModelPath()) && os.Getenv("EDGE_DATA_DIR") != "":
			man.Dir = filepath.Join(os.Getenv("EDGE_DATA_DIR"), "models") // as OpenDetector does
		}
		if _, err := os.Stat(man.ModelPath()); err != nil {
			bad(key+".dir", fmt.Errorf("the model file of %s: %w", mc.Manifest, err))
		}
	}
	checkModel("model", cfg.Model)
	for i, c := range cfg.Cameras {
		if c.Model != nil && c.IsEnabled() {
			checkModel(fmt.Sprintf("cameras[%d].model", i), *c.Model)
		}
	}
	if cfg.MQTT.TLS.Enabled() {
		if _, err := publish.TLSConfig(cfg.MQTT.TLS); err != nil {
			bad("mqtt.tls", err)
		}
	}
	if p := cfg.OTA.SelfTestImage; p != "" && cfg.OTA.FleetKey != "" {
		if _, err := os.Stat(p); err != nil {
			bad("ota.self_test_image", err)
		}
	}
	return errs
}
