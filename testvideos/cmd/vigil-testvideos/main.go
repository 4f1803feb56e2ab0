// Command vigil-testvideos serves video files over RTSP, each in a loop at real-time pace,
// like live cameras:
//
//	vigil-testvideos serve [--addr 127.0.0.1:8554] [--user U --pass P] [--cache DIR] FILE...
//
// It prints "name<TAB>url" for each stream and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-edge/vigil/testvideos/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-testvideos:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("usage: vigil-testvideos serve [--addr ADDR] [--user U --pass P] [--cache DIR] [--udp-port N] FILE...")
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "RTSP listen address")
	fs.StringVar(&cfg.User, "user", "", "user name required of readers")
	fs.StringVar(&cfg.Pass, "pass", "", "password required of readers")
	fs.StringVar(&cfg.CacheDir, "cache", "", "folder of transcoded files (default: user cache dir/vigil/testvideos)")
	fs.IntVar(&cfg.UDPPort, "udp-port", 0, "even UDP port for RTP (RTCP: +1); 0 picks a free pair")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg.Files = fs.Args()
	return server.Serve(ctx, cfg, stdout)
}
