package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/hal/mavlink"
)

func TestRunFeedsAClient(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	c, err := mavlink.New(mavlink.Config{Endpoint: "udp://" + addr, MaxAge: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--target", addr, "--pattern", "lawnmower", "--alt", "80", "--home", "45.5,-73.6,30", "--duration", "60s"}, &logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	var p mavlink.Pose
	for {
		if p, err = c.PoseAt(time.Now()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pose from the CLI's drone: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if p.AltRel < 79.5 || p.AltRel > 80.5 || p.AltMSL < 109.5 || p.AltMSL > 110.5 || p.Lat < 45.49 || p.Lat > 45.51 {
		t.Errorf("pose %+v", p)
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--pattern", "spiral"},
		{"--home", "1,2"},
		{"--gap-at", "5s"},
		{"--target", "nohost"},
		{"extra"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("run(%q) succeeded", args)
		} else {
			fmt.Fprintln(&out, err)
		}
	}
}
