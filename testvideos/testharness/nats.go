package testharness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSNode is one real nats-server process started by a test, with its NATS client
// listener, its MQTT listener (which needs server_name and JetStream) and, in a cluster, its
// route listener, all on 127.0.0.1.
type NATSNode struct {
	Name    string
	URL     string // nats://127.0.0.1:port
	MQTTURL string // tcp://127.0.0.1:port
	Dir     string // config, log and JetStream store

	t   testing.TB
	bin string
	cmd *exec.Cmd
	cfg string
}

// NATSCluster is a set of nodes routed to each other.
type NATSCluster struct {
	Nodes []*NATSNode
}

// URLs lists the nodes' NATS URLs, comma-separated; MQTTURLs their MQTT URLs.
func (c *NATSCluster) URLs() string     { return c.join(func(n *NATSNode) string { return n.URL }) }
func (c *NATSCluster) MQTTURLs() string { return c.join(func(n *NATSNode) string { return n.MQTTURL }) }

func (c *NATSCluster) join(f func(*NATSNode) string) string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, f(n))
	}
	return strings.Join(out, ",")
}

// StartNATS starts n nats-server nodes (n ≥ 1) with JetStream and MQTT; with n > 1 they form a
// cluster whose routes are set explicitly to each other's loopback ports, with no_advertise
// (nothing is gossiped to clients), and the call returns once JetStream answers on every node.
// Every node is killed when the test ends. It fails the test with a clear message when
// nats-server is not installed (run `make deps`).
func StartNATS(t testing.TB, n int) *NATSCluster {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nats-server"); e == nil {
			bin, err = "/usr/sbin/nats-server", nil
		}
	}
	if err != nil {
		t.Fatalf("nats-server is not installed: run `make deps` (apt-get install nats-server)")
	}
	type ports struct{ client, mqtt, route int }
	ps := make([]ports, n)
	free := FreePorts(t, 3*n) // distinct: one node's port must not be another's
	for i := range ps {
		ps[i] = ports{free[3*i], free[3*i+1], free[3*i+2]}
	}
	c := &NATSCluster{}
	for i := range n {
		node := &NATSNode{Name: fmt.Sprintf("n%d", i+1), Dir: t.TempDir(), t: t, bin: bin,
			URL: fmt.Sprintf("nats://127.0.0.1:%d", ps[i].client), MQTTURL: fmt.Sprintf("tcp://127.0.0.1:%d", ps[i].mqtt)}
		node.cfg = filepath.Join(node.Dir, "nats.conf")
		lines := []string{
			"server_name: " + node.Name,
			fmt.Sprintf("listen: 127.0.0.1:%d", ps[i].client),
			fmt.Sprintf("jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }", filepath.Join(node.Dir, "js")),
			mqttBlock(ps[i].mqtt, n),
		}
		if n > 1 {
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ps[j].route))
				}
			}
			lines = append(lines, fmt.Sprintf("cluster { name: vigil-test, listen: 127.0.0.1:%d, no_advertise: true, routes: [%s] }",
				ps[i].route, strings.Join(routes, ", ")))
		}
		if err := os.WriteFile(node.cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		node.start()
		t.Cleanup(func() {
			node.Kill()
			if t.Failed() {
				t.Logf("nats-server %s log:\n%s", node.Name, node.Log())
			}
		})
		c.Nodes = append(c.Nodes, node)
	}
	for _, node := range c.Nodes {
		node.WaitJetStream(30 * time.Second)
	}
	return c
}

func (n *NATSNode) start() {
	n.t.Helper()
	logf, err := os.OpenFile(filepath.Join(n.Dir, "nats.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(n.bin, "-c", n.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.t.Fatalf("start nats-server: %v", err)
	}
	logf.Close()
	n.cmd = cmd
	addr := strings.TrimPrefix(n.URL, "nats://")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.Kill()
	n.t.Fatalf("nats-server %s did not listen on %s within 10s; its log:\n%s", n.Name, addr, n.Log())
}

// WaitJetStream waits until JetStream answers through this node (in a cluster: a meta
// leader is elected), failing the test after d.
func (n *NATSNode) WaitJetStream(d time.Duration) {
	n.t.Helper()
	nc, err := nats.Connect(n.URL, nats.Timeout(2*time.Second))
	if err != nil {
		n.t.Fatalf("connect to nats-server %s: %v", n.Name, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("JetStream not ready on %s after %v: %v; log:\n%s", n.Name, d, err, n.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill stops the node with SIGKILL and waits for it. Safe to call twice.
func (n *NATSNode) Kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.cmd.Wait()
	n.cmd = nil
	if f, err := os.OpenFile(filepath.Join(n.Dir, "nats.log"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
		fmt.Fprintf(f, "---- killed at %s ----\n", time.Now().UTC().Format("15:04:05.000"))
		f.Close()
	}
}

// Restart starts a killed node again with the same configuration and store.
func (n *NATSNode) Restart() {
	n.t.Helper()
	n.start()
}

// Log returns what the node logged so far.
func (n *NATSNode) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "nats.log"))
	return string(b)
}

// mqttBlock is a node's MQTT listener. In a cluster, nats-server keeps MQTT sessions, retained
// messages and QoS 1 messages in streams of its own, and a QoS 1 PUBLISH waits for its
// message to be stored there: they must keep a quorum when a node dies, hence 3 replicas
// (nats-server picked 2 by itself here).
func mqttBlock(port, nodes int) string {
	if nodes < 3 {
		return fmt.Sprintf("mqtt { listen: 127.0.0.1:%d }", port)
	}
	return fmt.Sprintf("mqtt { listen: 127.0.0.1:%d, stream_replicas: 3 }", port)
}
