package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/fleet/auth"
)

func TestSecurityFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--mqtt-client-ca", "ca.pem"}, "--mqtt-client-ca needs --mqtt-tls-cert"},
		{[]string{"serve", "--mqtt-tls-cert", "c.pem"}, "--mqtt-tls-cert and --mqtt-tls-key go together"},
		{[]string{"serve", "--read-token", "short"}, "--read-token: token must be at least 16 bytes"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), tt.args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
			t.Errorf("%v: err %v (exit %d), want %q and exit 2", tt.args, err, exitCode(err), tt.want)
		}
		if strings.Contains(out.String()+err.Error(), "short") && strings.Contains(tt.want, "token") {
			t.Errorf("%v: the token shows in the output", tt.args)
		}
	}
}

func TestHashPassword(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := hashPassword([]string{"--iterations", "1000"}, strings.NewReader("edge-pw\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(out.String())
	if ok, err := auth.VerifyPassword(h, "edge-pw"); !ok || err != nil {
		t.Errorf("printed hash %q does not verify: %v", h, err)
	}
	if err := hashPassword(nil, strings.NewReader(""), &out, &errOut); err == nil || exitCode(err) != 2 {
		t.Errorf("empty stdin: %v", err)
	}
}
