package exporter_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-edge/vigil/fleet/exporter"
	"github.com/vigil-edge/vigil/fleet/rollout"
)

func TestRolloutsReportsEveryStateAndUnknownOnes(t *testing.T) {
	c := exporter.Rollouts(func() map[string]int { return map[string]int{"rolled_back": 2, "wave": 1, "novel": 3} })
	want := `
# HELP vigil_fleet_rollouts Model rollouts known to the fleet, by state (pending, canary, wave, paused, complete, rolled_back, aborted).
# TYPE vigil_fleet_rollouts gauge
vigil_fleet_rollouts{state="aborted"} 0
vigil_fleet_rollouts{state="canary"} 0
vigil_fleet_rollouts{state="complete"} 0
vigil_fleet_rollouts{state="novel"} 3
vigil_fleet_rollouts{state="paused"} 0
vigil_fleet_rollouts{state="pending"} 0
vigil_fleet_rollouts{state="rolled_back"} 2
vigil_fleet_rollouts{state="wave"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRolloutStatesMatchTheEngine(t *testing.T) {
	engine := []string{rollout.StatePending, rollout.StateCanary, rollout.StateWave, rollout.StatePaused,
		rollout.StateComplete, rollout.StateRolledBack, rollout.StateAborted}
	got := slices.Sorted(slices.Values(exporter.RolloutStates))
	slices.Sort(engine)
	if !slices.Equal(got, engine) {
		t.Fatalf("exporter.RolloutStates = %v, the rollout engine's states are %v", got, engine)
	}
}

func TestRolloutLeader(t *testing.T) {
	for _, leading := range []bool{false, true} {
		v := map[bool]string{false: "0", true: "1"}[leading]
		want := `
# HELP vigil_fleet_rollout_leader 1 when this instance runs the rollout engine (a fleet on its own always does; instances sharing PostgreSQL run it one at a time), else 0.
# TYPE vigil_fleet_rollout_leader gauge
vigil_fleet_rollout_leader ` + v + "\n"
		if err := testutil.CollectAndCompare(exporter.RolloutLeader(func() bool { return leading }), strings.NewReader(want)); err != nil {
			t.Errorf("leading %v: %v", leading, err)
		}
	}
}
