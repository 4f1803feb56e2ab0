package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vigil-edge/vigil/fleet/catalog"
)

// keygen writes a new fleet signing key pair and prints what agents pin.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder for fleet.key (PKCS#8 PEM, mode 0600) and fleet.pub; required")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("keygen: --out is required")}
	}
	pub, err := catalog.GenerateKey(*out)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	info := catalog.Info(pub)
	fmt.Fprintf(stdout, "private key: %s (keep it secret; vigil-fleet serve --key)\npublic key:  %s\nkey id:      %s\npublic key (base64, for the agents' configuration): %s\n",
		filepath.Join(*out, catalog.PrivateKeyFile), filepath.Join(*out, catalog.PublicKeyFile), info.ID, info.Base64)
	return nil
}
