package subscriber

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Several instances share the device traffic through one shared subscription (ShareGroup).
// Each keeps a persistent session, so a message the broker handed to an instance is never
// dropped when that instance dies: the broker keeps it, and the messages of the instance's
// share that follow, in the dead instance's session. To keep them flowing, the survivors
// adopt the session:
//
//   - every instance announces itself, retained, on PresenceRoot/<group>/<name> ("up"),
//     with "down" as its MQTT last will, and watches its peers there;
//   - when a peer is down, the live instance with the smallest name connects with the peer's
//     client id (persistent session, no reconnect) and handles its messages like its own:
//     the backlog first, then the peer's share of new traffic;
//   - when the peer starts again it takes its session back (the broker closes the adopter's
//     connection), and the adopter lets go.
//
// Storage is idempotent by msg_id (fleet/postgres), so a message handed over twice around a
// take-over is stored once.

// PresenceRoot is the topic under which fleet instances of a share group announce themselves.
const PresenceRoot = "vigil-fleet/v1/instances"

// presence is the retained message of one instance.
type presence struct {
	State    string `json:"state"` // "up" or "down"
	ClientID string `json:"client_id"`
	At       int64  `json:"at"` // UTC ms
}

func (s *Subscriber) presenceTopic(name string) string {
	return PresenceRoot + "/" + s.cfg.ShareGroup + "/" + name
}

// name is this instance's level in the presence topic: its client id without the
// fleet prefix, with no topic separators.
func instanceName(clientID string) string {
	n := clientID
	if i := strings.LastIndexByte(n, '/'); i >= 0 {
		n = n[i+1:]
	}
	return strings.NewReplacer("+", "_", "#", "_").Replace(n)
}

func presencePayload(state, clientID string) []byte {
	b, _ := json.Marshal(presence{State: state, ClientID: clientID, At: time.Now().UnixMilli()})
	return b
}

// peers tracks the group's instances and the sessions this instance adopted.
type peers struct {
	mu      sync.Mutex
	state   map[string]presence // by instance name
	adopted map[string]*adoption
}

// adoption is one adopted session: a one-shot MQTT connection under the peer's client id.
type adoption struct {
	client mqtt.Client
	done   chan struct{} // closed by end when the connection ended
	end    func()
}

// stop disconnects an adopted session and ends it.
func (a *adoption) stop() {
	a.client.Disconnect(250)
	a.end()
}

// onPresence records a peer's announcement and re-plans adoptions.
func (s *Subscriber) onPresence(_ mqtt.Client, m mqtt.Message) {
	m.Ack()
	name := m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:]
	var p presence
	if err := json.Unmarshal(m.Payload(), &p); err != nil || p.ClientID == "" || (p.State != "up" && p.State != "down") {
		s.log.Warn("bad fleet instance presence ignored", "topic", m.Topic())
		return
	}
	s.peers.mu.Lock()
	s.peers.state[name] = p
	s.peers.mu.Unlock()
	s.planAdoptions()
}

// planAdoptions adopts every down peer's session whose adopter this instance is (the live
// instance with the smallest name), and lets go of sessions whose peer is up again.
func (s *Subscriber) planAdoptions() {
	me := instanceName(s.cfg.ClientID)
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	live := []string{me}
	for name, p := range s.peers.state {
		if p.State == "up" && name != me {
			live = append(live, name)
		}
	}
	slices.Sort(live)
	for name, p := range s.peers.state {
		a := s.peers.adopted[name]
		switch {
		case name == me:
		case p.State == "up" || live[0] != me:
			if a != nil {
				delete(s.peers.adopted, name)
				go a.stop() // the peer takes its session back
			}
		case a == nil || isClosed(a.done):
			s.peers.adopted[name] = s.adopt(name, p.ClientID)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// adopt connects under a peer's client id and handles its session's messages until the
// connection ends. It never reconnects: a lost connection means the peer is back (or the
// broker is gone, and the next presence change plans again).
func (s *Subscriber) adopt(name, clientID string) *adoption {
	a := &adoption{done: make(chan struct{})}
	var once sync.Once
	end := func() { once.Do(func() { close(a.done) }) }
	a.end = end
	opts := mqtt.NewClientOptions().
		SetClientID(clientID).
		SetCleanSession(false).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetUsername(s.cfg.Username).
		SetPassword(s.cfg.Password).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(s.onMessage).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.log.Info("adopted session ended", "peer", name, "err", err)
			end()
		})
	for _, b := range strings.Split(s.cfg.BrokerURL, ",") {
		opts.AddBroker(b)
	}
	a.client = mqtt.NewClient(opts)
	s.adoptWG.Add(1)
	go func() {
		defer s.adoptWG.Done()
		tok := a.client.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			s.log.Warn("cannot adopt a stopped instance's session", "peer", name, "err", tok.Error())
			end()
			return
		}
		s.adoptions.Add(1)
		s.log.Info("adopted the session of a stopped instance", "peer", name, "client_id", clientID)
		filters := map[string]byte{}
		for _, t := range s.topics() {
			if strings.HasPrefix(t, "$share/") { // device traffic only: status reaches us already
				filters[t] = 1
			}
		}
		a.client.SubscribeMultiple(filters, nil).WaitTimeout(10 * time.Second)
		<-a.done
	}()
	return a
}

// closeAdoptions ends every adopted session and waits for them.
func (s *Subscriber) closeAdoptions() {
	s.peers.mu.Lock()
	for name, a := range s.peers.adopted {
		delete(s.peers.adopted, name)
		a.stop()
	}
	s.peers.mu.Unlock()
	s.adoptWG.Wait()
}

// Adopted reports the stopped peers' sessions this instance serves now and how many it has
// adopted since it started (ShareGroup only).
func (s *Subscriber) Adopted() (now int, total uint64) {
	return s.adoptedNow(), s.adoptions.Load()
}

func (s *Subscriber) adoptedNow() int {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	n := 0
	for _, a := range s.peers.adopted {
		if !isClosed(a.done) {
			n++
		}
	}
	return n
}
