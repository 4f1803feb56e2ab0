// Package monitoring holds what operators load into their monitoring stack: the Grafana
// dashboard (grafana/vigil-fleet.json) and the Prometheus alert rules with their runbooks
// (vigil-alerts.yml, unit-tested by vigil-alerts.test.yml). Its tests check the rules with
// promtool and the dashboard's queries against the metrics the agent and fleet export.
package monitoring
