package monitoring_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/hal/board"
	"github.com/vigil-edge/vigil/hal/mavlink"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// promtool finds promtool on PATH (make test puts .deps/prometheus/usr/bin there) or in .deps.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	p := filepath.Join(testharness.RepoRoot(), ".deps", "prometheus", "usr", "bin", "promtool")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("promtool not found on PATH nor at %s: run make deps", p)
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAlertRulesCheckAndUnitTests(t *testing.T) {
	runPromtool(t, ".", "check", "rules", "vigil-alerts.yml")
	runPromtool(t, ".", "test", "rules", "vigil-alerts.test.yml")
}

// Every alert has a unit test that expects it to fire, and a runbook.
func TestEveryAlertHasAFiringTestAndRunbook(t *testing.T) {
	rules := loadRules(t)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "vigil-alerts.test.yml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	want := []string{"VigilCameraDown", "VigilDetectionsStopped", "VigilOutboxGrowing", "VigilDeviceOffline",
		"VigilModelRolloutFailed", "VigilClockSkew"}
	for _, name := range want {
		if _, ok := rules[name]; !ok {
			t.Errorf("alert %s is missing from vigil-alerts.yml", name)
		}
	}
	for name, r := range rules {
		if !fires[name] || !quiet[name] {
			t.Errorf("alert %s: unit tests where it fires: %v, where it stays quiet: %v; want both", name, fires[name], quiet[name])
		}
		rb := r.Annotations["runbook"]
		if !strings.Contains(rb, "Confirm:") || !strings.Contains(rb, "Fix") {
			t.Errorf("alert %s: runbook annotation must say how to confirm and how to fix; got %q", name, rb)
		}
	}
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) map[string]rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "vigil-alerts.yml", &f)
	out := map[string]rule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r
		}
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type target struct {
	Panel string
	Expr  string
}

func dashboardTargets(t *testing.T) []target {
	t.Helper()
	b, err := os.ReadFile("grafana/vigil-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []target
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, target{p.Title, tg.Expr})
		}
	}
	if len(out) < 20 {
		t.Fatalf("dashboard has %d queries; expected the fleet, device and camera panels", len(out))
	}
	return out
}

// grafanaVars replaces the dashboard's variables by values Prometheus accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "$camera", ".*",
	"$fleet_job", "vigil-fleet", "$agent_job", "vigil-agent")

// Every dashboard query is valid PromQL: promtool parses them as recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, tg := range dashboardTargets(t) {
		q, _ := json.Marshal(grafanaVars.Replace(tg.Expr)) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "dashboard-rules.yml")
}

// recorder registers collectors and remembers them, to list every metric a part registers,
// also those without a series yet (a label vector before its first child).
type recorder struct {
	prometheus.Registerer
	cs []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// exported maps each metric name the agent and the fleet export to its label names.
type exported map[string][]string

func (e exported) addDescs(t *testing.T, cs []prometheus.Collector) {
	t.Helper()
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
			}
			e[m[1]] = labels
		}
	}
}

// addScrape reads the names and labels of a /metrics exposition.
func (e exported) addScrape(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s`)
	labelRE := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for sc.Scan() {
		m := series.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		for _, l := range labelRE.FindAllStringSubmatch(m[3], -1) {
			if !slices.Contains(e[m[1]], l[1]) {
				e[m[1]] = append(e[m[1]], l[1])
			}
		}
		if _, ok := e[m[1]]; !ok {
			e[m[1]] = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
}

func (e exported) has(name string) ([]string, bool) {
	if l, ok := e[name]; ok {
		return l, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} { // histogram series of a Desc
		if base, ok := strings.CutSuffix(name, suf); ok {
			if l, ok := e[base]; ok {
				if suf == "_bucket" {
					l = append(slices.Clone(l), "le")
				}
				return l, true
			}
		}
	}
	return nil, false
}

// agentMetrics lists what the agent registers: the pipeline metrics, the outbox gauges, the
// board collector and the MAVLink client's (drone mode), built by the constructors the agent
// calls.
func agentMetrics(t *testing.T) exported {
	t.Helper()
	rec := &recorder{Registerer: prometheus.NewRegistry()}
	metrics.New(rec)
	metrics.WatchOutbox(rec, func() metrics.OutboxStats { return metrics.OutboxStats{} })
	if err := rec.Register(board.NewCollector("/", "/")); err != nil {
		t.Fatal(err)
	}
	if _, err := mavlink.New(mavlink.Config{Endpoint: "udp://127.0.0.1:14550", Registerer: rec}); err != nil {
		t.Fatal(err)
	}
	e := exported{}
	e.addDescs(t, rec.cs)
	return e
}

// fleetMetrics scrapes a running fleet controller with OTA on (for its rollout gauge).
func fleetMetrics(t *testing.T) exported {
	t.Helper()
	c, err := fleet.New(fleet.Config{MQTTListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", ClientID: "monitoring-test",
		OTA: fleet.OTAConfig{DataDir: t.TempDir(), Tick: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("fleet close: %v", err)
		}
	})
	e := exported{}
	e.addScrape(t, "http://"+c.HTTPAddr()+"/metrics")
	return e
}

var (
	// a metric name followed by an optional selector; PromQL keywords and functions are
	// followed by "(" and are skipped.
	nameRE     = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	builtin    = map[string][]string{"up": nil} // Prometheus's own series per target
	scrape     = []string{"job", "instance"}    // labels Prometheus adds to every series
)

// metricRefs lists the metric names an expression selects, with the labels it matches on.
func metricRefs(expr string) map[string][]string {
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllStringFunc(expr, func(s string) string { return `""` })
	refs := map[string][]string{}
	for _, m := range nameRE.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[m[2]:m[3]]
		if !strings.HasPrefix(name, "vigil_") && name != "up" {
			continue
		}
		var labels []string
		if m[4] >= 0 {
			for _, lm := range matcherRE.FindAllStringSubmatch(expr[m[4]:m[5]], -1) {
				labels = append(labels, lm[1])
			}
		}
		refs[name] = append(refs[name], labels...)
	}
	return refs
}

// errorer is the part of testing.T that checkRefs uses.
type errorer interface {
	Helper()
	Errorf(format string, args ...any)
}

type fakeT struct {
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

func checkRefs(t errorer, where, expr string, exp exported) {
	t.Helper()
	refs := metricRefs(expr)
	if len(refs) == 0 {
		t.Errorf("%s: no Vigil metric in %q", where, expr)
	}
	available := map[string]bool{}
	for name, labels := range refs {
		have, ok := exp.has(name)
		if !ok {
			have, ok = builtin[name]
		}
		if !ok {
			t.Errorf("%s: %s is not exported by vigil-agent or vigil-fleet (query %q)", where, name, expr)
			continue
		}
		for _, l := range append(slices.Clone(have), scrape...) {
			available[l] = true
		}
		for _, l := range labels {
			if !slices.Contains(have, l) && !slices.Contains(scrape, l) {
				t.Errorf("%s: %s has no label %q (it has %v) in %q", where, name, l, have, expr)
			}
		}
	}
	for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && l != "le" && !available[l] {
				t.Errorf("%s: groups by %q, a label none of its metrics has, in %q", where, l, expr)
			}
		}
	}
}

// The dashboard's and the alerts' queries name only metrics and labels the binaries export.
func TestQueriesUseExportedMetrics(t *testing.T) {
	exp := agentMetrics(t)
	for name, labels := range fleetMetrics(t) {
		exp[name] = labels
	}
	for _, want := range []string{"vigil_source_up", "vigil_inference_duration_seconds", "vigil_outbox_pending_messages",
		"vigil_board_cpu_temperature_celsius", "vigil_mavlink_link_up", "vigil_fleet_devices", "vigil_fleet_rollouts"} {
		if _, ok := exp[want]; !ok {
			t.Fatalf("%s not found among the exported metrics: the collection of metric names is broken", want)
		}
	}
	for _, tg := range dashboardTargets(t) {
		checkRefs(t, "dashboard panel "+tg.Panel, tg.Expr, exp)
	}
	for name, r := range loadRules(t) {
		checkRefs(t, "alert "+name, r.Expr, exp)
	}
}

// The checker rejects what it must: an unknown metric, an unknown label, a bad grouping.
func TestCheckRefsCatchesMistakes(t *testing.T) {
	exp := exported{"vigil_source_up": {"camera"}}
	for _, bad := range []string{`vigil_source_upp`, `vigil_source_up{cam="x"}`, `sum by (stage) (vigil_source_up)`} {
		ft := &fakeT{}
		checkRefs(ft, "test", bad, exp)
		if !ft.failed {
			t.Errorf("checkRefs accepted %q", bad)
		}
	}
	ft := &fakeT{}
	checkRefs(ft, "test", `sum by (instance, camera) (vigil_source_up{camera=~"$camera"})`, exp)
	if ft.failed {
		t.Errorf("checkRefs rejected a good query: %s", ft.msg)
	}
}
