package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/fleet/broker"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/internal/logflag"
)

// serve runs the fleet controller until ctx is cancelled, then shuts it down.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mqttListen := fs.String("mqtt-listen", broker.DefaultAddr, "embedded MQTT broker's listen address")
	maxPacket := fs.Int("mqtt-max-packet", broker.DefaultMaxPacketSize, "embedded broker: largest MQTT packet in bytes (a CONNECT may have at most 64 KiB)")
	connectTimeout := fs.Duration("mqtt-connect-timeout", broker.DefaultConnectTimeout, "embedded broker: time a new connection has to send its CONNECT")
	maxConns := fs.Int("mqtt-max-connections", broker.DefaultMaxConnections, "embedded broker: open connections at most")
	connectRate := fs.Float64("mqtt-connect-rate", broker.DefaultConnectRate, "embedded broker: new connections per second per remote address, after a burst of --mqtt-connect-burst")
	connectBurst := fs.Int("mqtt-connect-burst", broker.DefaultConnectBurst, "embedded broker: burst of new connections per remote address")
	hashIter := fs.Int("mqtt-hash-iterations", auth.DefaultIterations, "embedded broker: PBKDF2 iterations that weaker password hashes of --mqtt-credentials are re-hashed to (in the file) at the next login; also the cost of a login with an unknown user")
	brokerURL := fs.String("broker", "", "external MQTT broker URL (tcp://host:port; several, comma-separated, are nodes of one cluster, tried in order); disables the embedded broker. Credentials: --broker-username with --broker-password-file or $"+envBrokerPassword+" (user:password@ in the URL works too, but shows in the process list)")
	brokerUser := fs.String("broker-username", "", "user name of the fleet's MQTT clients on the external broker")
	brokerPWFile := fs.String("broker-password-file", "", "file whose first line is the external broker's password (or $"+envBrokerPassword+")")
	httpListen := fs.String("http", fleet.DefaultHTTPAddr, "HTTP API listen address")
	clientID := fs.String("client-id", "", "name of the fleet's MQTT client: its client id is $vigil-fleet/NAME, a prefix no device id can have (default: the hostname)")
	gapTimeout := fs.Duration("gap-timeout", registry.DefaultGapTimeout, "how long a missing seq may still arrive (as a replay) before it is counted as lost")
	perDevice := fs.Bool("metrics-per-device", false, "add per-device series to /metrics (their number grows with the fleet)")
	var logf logflag.Flags
	logf.Register(fs, "info")
	sec := securityFlags(fs)
	dataDir := fs.String("data", "", "data folder for the device registry (registry.db), the model registry and rollouts (without it devices are kept in memory only and OTA is off)")
	keyFile := fs.String("key", "", "fleet private key that signs model and live-view commands (vigil-fleet keygen)")
	publicURL := fs.String("public-url", "", "base URL agents fetch models from (default http://<--http address>)")
	eventsMaxAge := fs.Duration("events-max-age", eventstore.DefaultMaxAge, "how long the event store keeps events, alerts and sampled detections (DATA/events.db; a temporary file without --data)")
	eventsMaxBytes := fs.Int64("events-max-bytes", eventstore.DefaultMaxBytes, "bound of the event store's records in bytes; the oldest go first")
	shareGroup := fs.String("share-group", "", "split device traffic with other instances through the MQTT shared subscription $share/GROUP/… of an external broker (with --store postgres://…)")
	ingest := fs.String("ingest", "", "take device traffic from a nats-server cluster through NATS JetStream instead of MQTT (nats://host:4222,nats://host:4223,…; NATS has no MQTT shared subscriptions): instances with the same --ingest-group split it; --broker names the same cluster's MQTT listener(s) (tcp://host:1883,…) for status and commands")
	ingestGroup := fs.String("ingest-group", "vigil-fleet", "with --ingest: name of the JetStream consumers the instances share (GROUP_<kind>)")
	store := fs.String("store", os.Getenv("VIGIL_FLEET_STORE"), "keep events, the device registry, the model catalogue and the rollouts in PostgreSQL (postgres://user@host/db; password from $PGPASSWORD or ~/.pgpass) instead of DATA/events.db, DATA/registry.db, DATA/models.db and DATA/rollouts.db (DATA/models then only caches model files), so several instances can share them; one instance at a time runs the rollouts (a PostgreSQL advisory lock), the others answer their API; every instance that signs needs the same --key file (default $VIGIL_FLEET_STORE)")
	mapTiles := fs.String("map-tiles", "", "map tile URL template (https://tiles.example/{z}/{x}/{y}.png) the dashboard draws drone detections on; default: a scaled plane")
	detectionsEvery := fs.Int("detections-every", eventstore.DefaultDetectionsEvery, "keep 1 in N detections messages per camera in the event store")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *eventsMaxAge <= 0 || *eventsMaxBytes <= 0 || *detectionsEvery < 1 {
		return usageError{fmt.Errorf("serve: --events-max-age, --events-max-bytes and --detections-every must be > 0")}
	}
	if *maxPacket < 1024 || *connectTimeout <= 0 || *maxConns < 1 || *connectRate <= 0 || *connectBurst < 1 {
		return usageError{fmt.Errorf("serve: --mqtt-max-packet must be >= 1024, and --mqtt-connect-timeout, --mqtt-max-connections, --mqtt-connect-rate and --mqtt-connect-burst > 0")}
	}
	if *gapTimeout <= 0 {
		return usageError{fmt.Errorf("serve: --gap-timeout %v: want > 0", *gapTimeout)}
	}
	log, err := logf.New(stderr)
	if err != nil {
		return usageError{fmt.Errorf("serve: %w", err)}
	}
	tlsCfg, tokens, err := sec.load()
	if err != nil {
		return err
	}
	brokerPW, err := brokerPassword(*brokerURL, *brokerUser, *brokerPWFile)
	if err != nil {
		return err
	}

	ota := fleet.OTAConfig{DataDir: *dataDir, PublicURL: *publicURL}
	if *keyFile != "" {
		if ota.SigningKey, err = catalog.LoadPrivateKey(*keyFile); err != nil {
			return fmt.Errorf("serve: --key: %w", err)
		}
	}

	if *shareGroup != "" && *brokerURL == "" {
		return usageError{fmt.Errorf("serve: --share-group needs --broker: the instances must share an external broker")}
	}
	if *ingest != "" && (*brokerURL == "" || *shareGroup != "") {
		return usageError{fmt.Errorf("serve: --ingest needs --broker (the MQTT listener(s) of the same nats-server cluster, for status and commands) and excludes --share-group")}
	}
	core, err := fleet.New(fleet.Config{
		MQTTListen: *mqttListen,
		MQTTLimits: broker.Limits{MaxPacketSize: *maxPacket, ConnectTimeout: *connectTimeout, MaxConnections: *maxConns,
			ConnectRate: *connectRate, ConnectBurst: *connectBurst},
		Broker:             *brokerURL,
		BrokerUsername:     *brokerUser,
		BrokerPassword:     brokerPW,
		HTTPListen:         *httpListen,
		ClientID:           *clientID,
		ShareGroup:         *shareGroup,
		Ingest:             *ingest,
		IngestGroup:        *ingestGroup,
		Registry:           registry.Options{GapTimeout: *gapTimeout},
		RegistryFile:       registryFile(*dataDir),
		MetricsPerDevice:   *perDevice,
		MapTiles:           *mapTiles,
		Logger:             log,
		MQTTTLS:            tlsCfg,
		MQTTCredentials:    *sec.credentials,
		MQTTHashIterations: *hashIter,
		APITokens:          tokens,
		OTA:                ota,
		Events: fleet.EventsConfig{DataDir: *dataDir, DetectionsEvery: *detectionsEvery,
			Retention: eventstore.Options{MaxAge: *eventsMaxAge, MaxBytes: *eventsMaxBytes}, Postgres: *store},
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-core.Failed():
	}
	if err := core.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		return fmt.Errorf("serve: %w", failed)
	}
	return nil
}

// envBrokerPassword may hold the external broker's password instead of a file.
const envBrokerPassword = "VIGIL_FLEET_BROKER_PASSWORD"

// brokerPassword reads the external broker's password: the first line of file, else
// $VIGIL_FLEET_BROKER_PASSWORD; "" when neither is set.
func brokerPassword(brokerURL, user, file string) (string, error) {
	pw := os.Getenv(envBrokerPassword)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("serve: --broker-password-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if pw = strings.TrimRight(line, "\r"); pw == "" {
			return "", usageError{fmt.Errorf("serve: --broker-password-file %s: the first line is empty", file)}
		}
	}
	if brokerURL == "" {
		if file != "" || user != "" {
			return "", usageError{errors.New("serve: --broker-username and --broker-password-file are for an external broker: give --broker")}
		}
		return "", nil // the embedded broker: its clients use a secret made at start
	}
	return pw, nil
}

// registryFile is where the device registry is saved in the data folder; "" without one.
func registryFile(dataDir string) string {
	if dataDir == "" {
		return ""
	}
	return filepath.Join(dataDir, registry.FileName)
}
