package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vigil-edge/vigil/internal/version"
)

const usage = `usage: vigil-fleet <command> [flags]

commands:
  serve   run the fleet controller (embedded MQTT broker, registry, HTTP API)
  watch   print a live table of the fleet from the HTTP API
  keygen  write the fleet's ed25519 signing key pair (keygen --out DIR)
  models  add a model to the registry, or list it (models add|list --data DIR)
  rollout create and steer canary model rollouts through the API (rollout create|list|get|pause|resume|abort)
  hash-password  read a password on stdin, print its hash for the MQTT credentials file
  simulate  run N simulated devices with M cameras against a broker (load tests, demos)
  version   print the version (also --version)

Run vigil-fleet <command> -h for its flags.
`

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// run runs one command until it ends or ctx is cancelled.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command")}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "watch":
		return watch(ctx, args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "models":
		return modelsCmd(args[1:], stdout, stderr)
	case "rollout":
		return rolloutCmd(ctx, args[1:], stdout, stderr)
	case "simulate":
		return simulateCmd(ctx, args[1:], stdout, stderr)
	case "hash-password":
		return hashPassword(args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintln(stdout, version.String("vigil-fleet"))
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
}

// parse parses a command's flags; a bad flag is a usage error (the flag package has printed it).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}
