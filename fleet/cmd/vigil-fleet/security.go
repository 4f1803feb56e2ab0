package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/fleet/broker"
)

// Environment variables that may hold API tokens instead of flags (flags show in ps).
const (
	envAdminToken = "VIGIL_FLEET_ADMIN_TOKEN"
	envReadToken  = "VIGIL_FLEET_READ_TOKEN"
)

// security holds serve's flags for the broker's TLS and credentials and the API's tokens.
type security struct {
	tlsListen, tlsCert, tlsKey, clientCA *string
	credentials                          *string
	tokensFile, adminToken, readToken    *string
}

func securityFlags(fs *flag.FlagSet) *security {
	return &security{
		tlsListen:   fs.String("mqtt-tls-listen", broker.DefaultTLSAddr, "embedded broker's TLS listen address (with --mqtt-tls-cert)"),
		tlsCert:     fs.String("mqtt-tls-cert", "", "embedded broker's TLS certificate (PEM); enables the TLS listener"),
		tlsKey:      fs.String("mqtt-tls-key", "", "the TLS certificate's private key (PEM)"),
		clientCA:    fs.String("mqtt-client-ca", "", "CA certificates (PEM) that sign device certificates: clients of the TLS listener must present one; a device's id is its certificate's CN"),
		credentials: fs.String("mqtt-credentials", "", "MQTT credentials file (YAML: devices: {id: password hash}); enables authentication and the topic ACL"),
		tokensFile:  fs.String("api-tokens", "", "HTTP API tokens file (YAML: tokens: [{name, role: admin|read, sha256|token}])"),
		adminToken:  fs.String("admin-token", "", "an HTTP API admin token (visible in the process list: prefer --api-tokens or $"+envAdminToken+")"),
		readToken:   fs.String("read-token", "", "a read-only HTTP API token (prefer --api-tokens or $"+envReadToken+")"),
	}
}

// load checks the flags and reads the files: the broker's TLS config (nil without a
// certificate) and the API tokens (nil when none is given: the API is open).
func (s *security) load() (*broker.TLS, *auth.Tokens, error) {
	var tlsCfg *broker.TLS
	switch {
	case *s.tlsCert != "" && *s.tlsKey != "":
		tlsCfg = &broker.TLS{Addr: *s.tlsListen, CertFile: *s.tlsCert, KeyFile: *s.tlsKey, ClientCAFile: *s.clientCA}
	case *s.tlsCert != "" || *s.tlsKey != "":
		return nil, nil, usageError{errors.New("serve: --mqtt-tls-cert and --mqtt-tls-key go together")}
	case *s.clientCA != "":
		return nil, nil, usageError{errors.New("serve: --mqtt-client-ca needs --mqtt-tls-cert and --mqtt-tls-key")}
	}
	tokens := &auth.Tokens{}
	if *s.tokensFile != "" {
		t, err := auth.LoadTokens(*s.tokensFile)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: %w", err)
		}
		tokens = t
	}
	for _, t := range []struct{ name, role, flag, env string }{
		{"admin-token", auth.RoleAdmin, *s.adminToken, os.Getenv(envAdminToken)},
		{"read-token", auth.RoleRead, *s.readToken, os.Getenv(envReadToken)},
	} {
		v := t.flag
		if v == "" {
			v = t.env
		}
		if v == "" {
			continue
		}
		if err := tokens.Add(t.name, t.role, v); err != nil {
			return nil, nil, usageError{fmt.Errorf("serve: --%s: %w", t.name, err)}
		}
	}
	if tokens.Len() == 0 {
		tokens = nil
	}
	return tlsCfg, tokens, nil
}

// hashPassword reads a password (the first line of stdin) and prints its hash for the MQTT
// credentials file.
func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	iter := fs.Int("iterations", auth.DefaultIterations, "PBKDF2 iterations")
	if err := parse(fs, args); err != nil {
		return err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hash-password: read stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return usageError{errors.New("hash-password: give the password on stdin")}
	}
	h, err := auth.HashPasswordIterations(pw, *iter)
	if err != nil {
		return usageError{fmt.Errorf("hash-password: %w", err)}
	}
	fmt.Fprintln(stdout, h)
	return nil
}
