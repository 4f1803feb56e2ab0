package fleet_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

const readToken = "read-token-0123456789abcdef"

// getEvents fetches path from c's API with the read token and decodes the JSON array.
func getEvents(t *testing.T, c *fleet.Core, path string) (int, []eventstore.Record, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.HTTPAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, nil, e
	}
	var recs []eventstore.Record
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, recs, nil
}

func seqs(recs []eventstore.Record) []uint64 {
	out := []uint64{}
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// publishEvent sends an event (or, with rule set, an alert) under seq.
func publishEvent(t *testing.T, p *testpub.Publisher, seq uint64, camera, label, rule string, at time.Time) {
	t.Helper()
	h := wire.Header{DeviceID: p.Device, Seq: seq, MsgID: p.MsgID(seq), CapturedAt: at.UnixMilli()}
	var msg any
	kind := wire.KindEvents
	id := fmt.Sprintf("01KAP98VKVZ8M1C4A9R6H3T%03d", seq)
	if rule == "" {
		msg = wire.EncodeEvent(h, frame.EventChange{Camera: camera, Type: wire.EventNew, At: at,
			After: frame.EventState{ID: id, TrackID: seq, Label: label, Start: at, LastSeen: at}})
	} else {
		kind = wire.KindAlerts
		msg = wire.EncodeAlert(h, frame.Alert{Camera: camera, ID: id, RuleID: rule, RuleType: "zone", Label: label, At: at})
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(wire.Topic(p.Device, kind, camera), b, false)
}

func TestEventStoreEndToEnd(t *testing.T) {
	tokens := &auth.Tokens{}
	if err := tokens.Add("reader", auth.RoleRead, readToken); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	cfg := fleet.Config{MQTTListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", ClientID: "vigil-fleet-" + t.Name(),
		Logger: logger(), APITokens: tokens, Events: fleet.EventsConfig{DataDir: data, DetectionsEvery: 5}}
	c, err := fleet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = c.Close()
		}
	}()
	waitHealthAuth(t, c)

	p := testpub.Connect(t, "tcp://"+c.BrokerAddr(), "edge-01")
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	// The store orders by arrival, and the subscriber handles messages concurrently: each
	// message is sent once the one before it was accepted, so that arrival follows seq.
	stored := 0
	accepted := func(seq uint64, dups uint64, kept bool) {
		t.Helper()
		if kept {
			stored++
		}
		eventually(t, fmt.Sprintf("seq %d accepted", seq), func() (bool, string) {
			d, ok := c.Registry().Device("edge-01")
			recs, err := c.Events().Query(context.Background(), eventstore.Filter{})
			return ok && d.HighestSeq == seq && d.Duplicates == dups && err == nil && len(recs) == stored,
				fmt.Sprintf("%+v, %d stored, %v", d.Stream, len(recs), err)
		})
	}
	publishEvent(t, p, 1, "gate", "person", "", base)
	accepted(1, 0, true)
	publishEvent(t, p, 2, "yard", "car", "", base.Add(time.Second))
	accepted(2, 0, true)
	publishEvent(t, p, 3, "gate", "person", "door", base.Add(2*time.Second))
	accepted(3, 0, true)
	publishEvent(t, p, 1, "gate", "person", "", base) // a duplicate: stored once
	accepted(3, 1, false)
	for seq := uint64(4); seq <= 15; seq++ { // 12 detections: 1 in 5 kept (seqs 4, 9, 14)
		p.DetectionsSeq("gate", seq, false, "person", "dog")
		accepted(seq, 1, seq%5 == 4)
	}
	eventually(t, "15 messages accepted", func() (bool, string) {
		d, ok := c.Registry().Device("edge-01")
		return ok && d.HighestSeq == 15 && d.Duplicates == 1, fmt.Sprintf("%+v", d.Stream)
	})
	// Stores run behind acceptance (the broker's acknowledgement waits for them, the registry
	// does not): wait until the six records to keep are stored.
	eventually(t, "6 records stored", func() (bool, string) {
		recs, err := c.Events().Query(context.Background(), eventstore.Filter{})
		return err == nil && len(recs) == 6, fmt.Sprintf("%d records, %v", len(recs), err)
	})

	// Without a token: 401.
	if resp, err := http.Get("http://" + c.HTTPAddr() + "/api/v1/events"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	check := func(c *fleet.Core) {
		t.Helper()
		cases := []struct {
			query string
			want  []uint64
		}{
			{"", []uint64{14, 9, 4, 3, 2, 1}}, // newest first (detections captured now, the events a minute ago)
			{"?kind=event", []uint64{2, 1}},
			{"?kind=alert&rule=door", []uint64{3}},
			{"?rule=nope", []uint64{}},
			{"?kind=detections&label=dog", []uint64{14, 9, 4}},
			{"?camera=yard", []uint64{2}},
			{"?label=person&device=edge-01&limit=2", []uint64{14, 9}},
			{"?device=edge-02", []uint64{}},
		}
		for _, tc := range cases {
			code, recs, e := getEvents(t, c, "/api/v1/events"+tc.query)
			if code != http.StatusOK || !slices.Equal(seqs(recs), tc.want) {
				t.Errorf("%s: %d %v %v, want seqs %v", tc.query, code, seqs(recs), e, tc.want)
			}
		}
		// since and until bound the time the fleet received a record, not its captured_at.
		_, all, _ := getEvents(t, c, "/api/v1/events")
		if len(all) == 6 {
			since, until := all[4].ReceivedAt, all[4].ReceivedAt.Add(time.Millisecond) // seq 2's arrival
			var want []uint64
			for _, r := range all {
				if !r.ReceivedAt.Before(since.Truncate(time.Millisecond)) && r.ReceivedAt.Before(until.Truncate(time.Millisecond)) {
					want = append(want, r.Seq)
				}
			}
			q := fmt.Sprintf("?since=%d&until=%s", since.UnixMilli(), until.UTC().Format(time.RFC3339Nano))
			if _, got, _ := getEvents(t, c, "/api/v1/events"+q); !slices.Contains(seqs(got), 2) || !slices.Equal(seqs(got), want) {
				t.Errorf("%s: seqs %v, want %v (by received_at)", q, seqs(got), want)
			}
		}
		_, recs, _ := getEvents(t, c, "/api/v1/events?kind=alert")
		if len(recs) != 1 || recs[0].Device != "edge-01" || recs[0].Camera != "gate" || recs[0].RuleID != "door" ||
			recs[0].CapturedAt != base.Add(2*time.Second).UnixMilli() || !json.Valid(recs[0].Payload) {
			t.Errorf("alert record: %+v", recs)
		}

		// Export: oldest first, one raw message per line.
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.HTTPAddr()+"/api/v1/events/export?device=edge-01", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" {
			t.Fatalf("export: %d %q", resp.StatusCode, ct)
		}
		var got []uint64
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var h wire.Header
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
				t.Fatalf("export line %q: %v", sc.Text(), err)
			}
			got = append(got, h.Seq)
		}
		if !slices.Equal(got, []uint64{1, 2, 3, 4, 9, 14}) {
			t.Errorf("export seqs %v", got)
		}
	}
	check(c)

	// Bad parameters: 400 naming the parameter.
	for q, param := range map[string]string{"?limit=0": "limit", "?kind=events": "kind", "?since=x": "since", "?devcie=a": "devcie"} {
		for _, path := range []string{"/api/v1/events", "/api/v1/events/export"} {
			code, _, e := getEvents(t, c, path+q)
			if code != http.StatusBadRequest || e["error"] == "" || !strings.Contains(e["error"], `"`+param+`"`) {
				t.Errorf("%s%s: %d %v", path, q, code, e)
			}
		}
	}

	// A restart with the same data folder still has them.
	p.Disconnect()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	c2 := start(t, fleet.Config{MQTTListen: "127.0.0.1:0", APITokens: tokens, Events: fleet.EventsConfig{DataDir: data}})
	check(c2)
}

// waitHealthAuth waits until c's subscriber is connected, with the read token.
func waitHealthAuth(t *testing.T, c *fleet.Core) {
	t.Helper()
	eventually(t, "healthz ok", func() (bool, string) {
		resp, err := http.Get("http://" + c.HTTPAddr() + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}
