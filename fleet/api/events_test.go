package api_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/eventstore"
)

func TestParseEventsQuery(t *testing.T) {
	since := time.Date(2025, 11, 22, 17, 20, 0, 0, time.UTC)
	good := []struct {
		q    string
		want eventstore.Filter
	}{
		{"", eventstore.Filter{}},
		{"device=d1&camera=gate&label=person&rule=door&kind=alert&limit=5",
			eventstore.Filter{Device: "d1", Camera: "gate", Label: "person", RuleID: "door", Kind: eventstore.KindAlert, Limit: 5}},
		{"since=2025-11-22T17:20:00Z", eventstore.Filter{Since: since}},
		{"since=2025-11-22T18:20:00%2B01:00", eventstore.Filter{Since: since.In(time.FixedZone("", 3600))}},
		{"since=1763832000000&until=1763832000001", eventstore.Filter{Since: since, Until: since.Add(time.Millisecond)}},
		{"limit=10000&kind=detections", eventstore.Filter{Limit: 10000, Kind: eventstore.KindDetections}},
	}
	for _, tc := range good {
		q, _ := url.ParseQuery(tc.q)
		f, err := api.ParseEventsQuery(q)
		if err != nil {
			t.Errorf("%q: %v", tc.q, err)
			continue
		}
		if !f.Since.Equal(tc.want.Since) || !f.Until.Equal(tc.want.Until) {
			t.Errorf("%q: since %v until %v, want %v %v", tc.q, f.Since, f.Until, tc.want.Since, tc.want.Until)
		}
		f.Since, f.Until, tc.want.Since, tc.want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if f != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.q, f, tc.want)
		}
	}
	bad := []struct{ q, param string }{
		{"limit=0", "limit"},
		{"limit=10001", "limit"},
		{"limit=x", "limit"},
		{"kind=events", "kind"},
		{"since=yesterday", "since"},
		{"until=2025-13-01T00:00:00Z", "until"},
		{"since=99999999999999999999", "since"},
		{"since=2000&until=1000", "until"},
		{"devce=d1", "devce"},
		{"device=a&device=b", "device"},
		{"label=" + strings.Repeat("x", 300), "label"},
	}
	for _, tc := range bad {
		q, _ := url.ParseQuery(tc.q)
		_, err := api.ParseEventsQuery(q)
		var pe *api.ParamError
		if !errors.As(err, &pe) || pe.Param != tc.param || !strings.Contains(err.Error(), `"`+tc.param+`"`) {
			t.Errorf("%.40q: error %v, want one naming %q", tc.q, err, tc.param)
		}
	}
}

func FuzzParseEventsQuery(f *testing.F) {
	for _, s := range []string{"", "device=d1&kind=event&limit=5", "since=2025-11-22T17:20:00Z&until=1763832000001",
		"since=-1", "limit=00010", "kind=alert&rule=r&label=person", "until=1&since=0", "since=9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := api.ParseEventsQuery(q)
		if err != nil {
			var pe *api.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("%q: error %v is not a ParamError", raw, err)
			}
			if _, given := q[pe.Param]; !given {
				t.Fatalf("%q: error %v is not a ParamError naming a parameter", raw, err)
			}
			return
		}
		if flt.Limit < 0 || flt.Limit > api.MaxEventsLimit {
			t.Fatalf("%q: limit %d", raw, flt.Limit)
		}
		if !flt.Since.IsZero() && !flt.Until.IsZero() && !flt.Until.After(flt.Since) {
			t.Fatalf("%q: until %v not after since %v", raw, flt.Until, flt.Since)
		}
		switch flt.Kind {
		case "", eventstore.KindEvent, eventstore.KindAlert, eventstore.KindDetections:
		default:
			t.Fatalf("%q: kind %q", raw, flt.Kind)
		}
	})
}
