package fleet_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Responses map[string]any `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: version %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// notAPI are the routes that are not part of the REST API: the dashboard's page and assets
// and the JSON 404 catch-all.
var notAPI = []string{"GET /{$}", "GET /static/", "GET /", "/"}

// registeredRoutes reads the ServeMux patterns registered by the fleet's code (packages fleet
// and fleet/api): every Handle and HandleFunc call whose pattern is a string constant.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	consts := map[string]string{"catalog.ManifestFile": catalog.ManifestFile}
	var routes []string
	for _, dir := range []string{".", "api"} {
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) != 2 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
					return true
				}
				pat, ok := constString(call.Args[0], consts)
				if !ok {
					t.Errorf("%s: a route pattern this test cannot read: give it a string constant", fset.Position(call.Pos()))
					return true
				}
				routes = append(routes, pat)
				return true
			})
		}
	}
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in the fleet's code: the route scan is broken", len(routes))
	}
	return routes
}

func constString(e ast.Expr, consts map[string]string) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		}
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			a, ok1 := constString(e.X, consts)
			b, ok2 := constString(e.Y, consts)
			return a + b, ok1 && ok2
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			s, ok := consts[x.Name+"."+e.Sel.Name]
			return s, ok
		}
	}
	return "", false
}

// Every route the fleet registers is documented, and every documented operation is a route.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var real []string
	for _, r := range registeredRoutes(t) {
		if slices.Contains(notAPI, r) {
			continue
		}
		real = append(real, r)
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is not in fleet/api/openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(real, d) {
			t.Errorf("openapi.json documents %q, which the fleet does not register", d)
		}
	}
}

// pathValues fills the documented paths' parameters.
var pathValues = strings.NewReplacer("{id}", "no-such-id", "{name}", "no-such-model", "{version}", "1", "{action}", "pause")

// Every documented operation answers on a running fleet (OTA and events on) with one of its
// documented status codes, never the router's 404 or 405.
func TestOpenAPIOperationsAnswer(t *testing.T) {
	doc := loadOpenAPI(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0",
		OTA: fleet.OTAConfig{DataDir: t.TempDir(), SigningKey: key, Tick: time.Second}})
	base := "http://" + c.HTTPAddr()
	for path, ops := range doc.Paths {
		for method, op := range ops {
			method = strings.ToUpper(method)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("{}")
			}
			req, err := http.NewRequestWithContext(ctx, method, base+pathValues.Replace(path), body)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				cancel()
				t.Errorf("%s %s: %v", method, path, err)
				continue
			}
			var head [512]byte
			n := 0
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") { // a stream never ends
				n, _ = io.ReadFull(resp.Body, head[:])
			}
			resp.Body.Close()
			cancel()
			code := strconv.Itoa(resp.StatusCode)
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s %s answered %s, not a documented response (%v): %s", method, path, resp.Status,
					slices.Sorted(mapsKeys(op.Responses)), head[:n])
			}
			if resp.StatusCode == http.StatusMethodNotAllowed || bytes.Contains(head[:n], []byte("no such endpoint")) ||
				bytes.Contains(head[:n], []byte("404 page not found")) {
				t.Errorf("%s %s is not routed: %s %s", method, path, resp.Status, head[:n])
			}
		}
	}
	// The document served is the embedded one.
	resp, err := http.Get(base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(got, api.OpenAPI) {
		t.Errorf("GET /api/v1/openapi.json: %s, %q, %d bytes; want 200, application/json, the document", resp.Status,
			resp.Header.Get("Content-Type"), len(got))
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The schemas list exactly the JSON fields of the Go types the API writes and reads.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]reflect.Type{
		"Error": reflect.TypeFor[api.Error](), "Health": reflect.TypeFor[api.Health](), "MQTT": reflect.TypeFor[api.MQTT](),
		"Device": reflect.TypeFor[api.Device](), "Camera": reflect.TypeFor[api.Camera](), "Telemetry": reflect.TypeFor[api.Telemetry](),
		"Model": reflect.TypeFor[api.Model](), "ModelRef": reflect.TypeFor[wire.Model](), "RolloutSpec": reflect.TypeFor[rollout.Spec](),
		"Rollout": reflect.TypeFor[rollout.Rollout](), "DeviceProgress": reflect.TypeFor[rollout.DeviceProgress](),
		"Record": reflect.TypeFor[eventstore.Record](),
	}
	for name, s := range doc.Components.Schemas {
		typ, ok := types[name]
		if !ok {
			t.Errorf("schema %s: no Go type mapped in this test", name)
			continue
		}
		var fields []string
		for f := range typ.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag != "-" && tag != "" && f.IsExported() {
				fields = append(fields, tag)
			}
		}
		props := slices.Sorted(mapsKeys(s.Properties))
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has properties %v; %s has JSON fields %v", name, props, typ, fields)
		}
		for _, r := range s.Required {
			if !slices.Contains(props, r) {
				t.Errorf("schema %s requires %q, which is not a property", name, r)
			}
		}
	}
}
