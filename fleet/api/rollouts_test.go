package api_test

import (
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/fleet/api"
)

func FuzzDecodeSpec(f *testing.F) {
	for _, s := range []string{
		`{"model":"m@1","devices":"all","canary":1,"waves":[25,50,100],"health_window":"2m"}`,
		`{"model":"m@1"} {}`, `{"bogus":1}`, `{"health_window":"x"}`, `[]`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		s, err := api.DecodeSpec(strings.NewReader(body))
		if err != nil {
			return
		}
		_ = s.Normalize() // must not panic
	})
}
