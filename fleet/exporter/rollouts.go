package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
)

var descRollouts = prometheus.NewDesc(ns+"rollouts",
	"Model rollouts known to the fleet, by state (pending, canary, wave, paused, complete, rolled_back, aborted).",
	[]string{"state"}, nil)

// RolloutStates lists the states vigil_fleet_rollouts always reports, zero or not, so an
// alert on a state can compare against a series that exists.
var RolloutStates = []string{"pending", "canary", "wave", "paused", "complete", "rolled_back", "aborted"}

// Rollouts returns a collector of vigil_fleet_rollouts{state}. states is called at each scrape,
// possibly concurrently, and returns how many rollouts are in each state; states it omits
// from RolloutStates are reported as 0, states not in RolloutStates are reported as given.
func Rollouts(states func() map[string]int) prometheus.Collector {
	return rolloutCollector(states)
}

type rolloutCollector func() map[string]int

func (rolloutCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descRollouts }

func (f rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	n := f()
	seen := map[string]bool{}
	for _, s := range RolloutStates {
		seen[s] = true
		ch <- prometheus.MustNewConstMetric(descRollouts, prometheus.GaugeValue, float64(n[s]), s)
	}
	for s, v := range n {
		if !seen[s] {
			ch <- prometheus.MustNewConstMetric(descRollouts, prometheus.GaugeValue, float64(v), s)
		}
	}
}

var descRolloutLeader = prometheus.NewDesc(ns+"rollout_leader",
	"1 when this instance runs the rollout engine (a fleet on its own always does; instances sharing PostgreSQL run it one at a time), else 0.",
	nil, nil)

// RolloutLeader returns a collector of vigil_fleet_rollout_leader; leading is called at each
// scrape, possibly concurrently.
func RolloutLeader(leading func() bool) prometheus.Collector { return leaderCollector(leading) }

type leaderCollector func() bool

func (leaderCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descRolloutLeader }

func (f leaderCollector) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if f() {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(descRolloutLeader, prometheus.GaugeValue, v)
}
