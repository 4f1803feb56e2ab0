package wire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

const (
	eventID = "01KAMX3Q8R0000000000000001"
	alertID = "01KAMX3Q8R0000000000000002"
)

func header(schema string) wire.Header {
	return wire.Header{Schema: schema, DeviceID: "edge-01", Seq: 7, MsgID: "edge-01-abc-7", CapturedAt: 1763832000123}
}

func sampleState() wire.EventState {
	return wire.EventState{ID: eventID, TrackID: 3, Label: "person", TopScore: 0.91, Score: 0.88,
		StartTime: 1763832000000, BoxPx: [4]int{412, 103, 447, 201}, BoxNorm: [4]float64{0.5365, 0.1788, 0.582, 0.349},
		Zones: []string{"door"}, EnteredZones: []string{"yard", "door"}, Speed: 12.5, SpeedUnit: wire.UnitPxPerS}
}

func TestEventMessagesMatchSchema(t *testing.T) {
	before := sampleState()
	after := before
	after.Zones = nil // must be written as []
	after.HasSnapshot, after.Snapshot = true, wire.SnapshotPath(eventID)
	end := after
	endMS := int64(1763832009000)
	end.EndTime = &endMS
	for _, ev := range []wire.Event{
		{Header: header(wire.SchemaEvent), Camera: "gate", Type: wire.EventNew, After: before},
		{Header: header(wire.SchemaEvent), Camera: "gate", Type: wire.EventUpdate, Before: &before, After: after},
		{Header: header(wire.SchemaEvent), Camera: "gate", Type: wire.EventEnd, Before: &after, After: end},
	} {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		testharness.MustValidateJSON(t, "event", b)
		var back wire.Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Type != ev.Type || back.After.ID != eventID || back.Seq != 7 || (back.Before == nil) != (ev.Before == nil) {
			t.Fatalf("round trip changed the message: %s", b)
		}
		if ev.Type == wire.EventNew && !strings.Contains(string(b), `"before":null`) {
			t.Errorf("new event must carry before: null: %s", b)
		}
		if ev.Type == wire.EventUpdate && !strings.Contains(string(b), `"zones":[]`) {
			t.Errorf("nil zones must be written as []: %s", b)
		}
	}
}

func TestEventSchemaRejects(t *testing.T) {
	st := sampleState()
	for name, mutate := range map[string]func(*wire.Event){
		"update without before": func(e *wire.Event) { e.Type = wire.EventUpdate },
		"end without end_time":  func(e *wire.Event) { e.Type = wire.EventEnd; e.Before = &st },
		"bad event id":          func(e *wire.Event) { e.After.ID = "../../etc/passwd" },
		"bad type":              func(e *wire.Event) { e.Type = "gone" },
		"score above 1":         func(e *wire.Event) { e.After.Score = 1.5 },
		"snapshot elsewhere":    func(e *wire.Event) { e.After.Snapshot = "http://evil/x.jpg" },
		"duplicate zones":       func(e *wire.Event) { e.After.Zones = []string{"a", "a"} },
	} {
		ev := wire.Event{Header: header(wire.SchemaEvent), Camera: "gate", Type: wire.EventNew, After: st}
		mutate(&ev)
		b, _ := json.Marshal(ev)
		if testharness.ValidateJSON("event", b) == nil {
			t.Errorf("%s: schema accepted %s", name, b)
		}
	}
}

func TestAlertMessageMatchesSchema(t *testing.T) {
	for _, a := range []wire.Alert{
		{Header: header(wire.SchemaAlert), Camera: "gate", AlertID: alertID, RuleID: "door", RuleType: "zone",
			Kind: "entered", EventIDs: []string{eventID}, TrackIDs: []uint64{3}, Label: "person",
			Time: 1763832000123, Value: 2.5, Unit: "s", Snapshot: wire.SnapshotPath(eventID)},
		// A crowding alert that ended with nobody left: empty lists, empty label.
		{Header: header(wire.SchemaAlert), Camera: "gate", AlertID: alertID, RuleID: "crowd", RuleType: "crowding",
			Kind: "ended", Time: 1763832000123, Unit: "objects"},
	} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		testharness.MustValidateJSON(t, "alert", b)
		if !strings.Contains(string(b), `"event_ids":[`) || !strings.Contains(string(b), `"track_ids":[`) {
			t.Errorf("id lists must be arrays: %s", b)
		}
	}
	bad := wire.Alert{Header: header(wire.SchemaAlert), Camera: "gate", AlertID: "not-a-ulid", RuleID: "x", RuleType: "zone"}
	b, _ := json.Marshal(bad)
	if testharness.ValidateJSON("alert", b) == nil {
		t.Errorf("schema accepted a bad alert id: %s", b)
	}
}

func TestValidULID(t *testing.T) {
	for s, want := range map[string]bool{
		eventID:                        true,
		"7ZZZZZZZZZZZZZZZZZZZZZZZZZ":   true,
		"8ZZZZZZZZZZZZZZZZZZZZZZZZZ":   false, // past 2^128
		"01kamx3q8r0000000000000001":   false, // lower case is not canonical
		"01KAMX3Q8R000000000000000I":   false,
		"01KAMX3Q8R00000000000000":     false,
		"../../../../../../etc/passwd": false,
		"":                             false,
	} {
		if ValidULID := wire.ValidULID(s); ValidULID != want {
			t.Errorf("ValidULID(%q) = %v, want %v", s, ValidULID, want)
		}
	}
}
