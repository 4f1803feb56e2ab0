// Command vigil-fleet is Vigil's fleet controller: `serve` runs the embedded MQTT broker, the
// device registry and the HTTP API; `watch` prints a live table of the fleet from that API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // the flag package printed the help
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-fleet:", err)
		os.Exit(exitCode(err))
	}
}
