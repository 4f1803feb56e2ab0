package auth

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Reasons a connect is refused; each is a key of [MQTTStats.Rejected].
const (
	RejectAnonymous   = "anonymous"        // no user name and no client certificate
	RejectBadPassword = "bad_credentials"  // unknown user or wrong password
	RejectCertUser    = "cert_user"        // the user name differs from the certificate's CN
	RejectClientID    = "client_id"        // a device's client id differs from its id, or is reserved to the fleet
	RejectBadIdentity = "invalid_identity" // a certificate CN that is neither a fleet name nor a device id
	RejectWillTopic   = "will_topic"       // a last will on a topic the client may not publish to
)

// MQTT is a mochi-mqtt hook that authenticates every client and checks every publish and
// subscribe against Vigil's topic ACL:
//
//   - Identity. A client that presents a client certificate verified by the TLS listener's CA
//     is the certificate's subject CN; a user name, if it sends one too, must equal the CN,
//     and no password is needed. Any other client must send a user name and password that
//     the [Credentials] accept. Anonymous clients are refused.
//   - Client ids starting with wire.FleetClientPrefix belong to the fleet's own clients: any
//     other identity using one is refused, so no one can take over the fleet's sessions.
//   - Devices (a device id from the credentials file, or any certificate CN that is a valid
//     device id) must connect with the client id equal to their id. They may publish only
//     under vigil/v1/<id>/ but not to vigil/v1/<id>/cmd/ (only the fleet sends commands), and
//     subscribe only to filters under vigil/v1/<id>/cmd/.
//   - The fleet (the fleet controller's own subscriber and the fleet names of the file, or a
//     certificate whose CN is one of them) may subscribe to everything and publish only to
//     vigil/v1/<device>/cmd/.
//   - A last will is a publish too: a connect whose will topic the ACL forbids is refused (mochi
//     sends wills without asking the ACL).
//
// Mochi calls its methods from the clients' goroutines, concurrently.
type MQTT struct {
	mqtt.HookBase
	creds *Credentials
	log   *slog.Logger

	mu       sync.Mutex
	accepted uint64
	rejected map[string]uint64
	deniedW  uint64
	deniedR  uint64
}

// MQTTStats counts the hook's decisions since it was made.
type MQTTStats struct {
	Accepted      uint64            `json:"accepted"`       // connects accepted
	Rejected      map[string]uint64 `json:"rejected"`       // connects refused, by reason
	DeniedPublish uint64            `json:"denied_publish"` // publishes refused by the ACL
	DeniedRead    uint64            `json:"denied_read"`    // subscriptions (or deliveries) refused by the ACL
}

// NewMQTT returns a hook that accepts the identities of creds (which must not be nil) and
// certificate identities; log receives one line per refused connect (never a password).
func NewMQTT(creds *Credentials, log *slog.Logger) *MQTT {
	if log == nil {
		log = slog.Default()
	}
	creds.log = log.With("component", "mqtt-auth")
	return &MQTT{creds: creds, log: log.With("component", "mqtt-auth"), rejected: map[string]uint64{}}
}

// ID names the hook for mochi.
func (h *MQTT) ID() string { return "vigil-auth" }

// Provides tells mochi which hook methods the hook implements.
func (h *MQTT) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// certName returns the verified client certificate's CN, or "" without one.
func certName(cl *mqtt.Client) string {
	// The broker's connections wrap *tls.Conn (fleet/broker checks their first packet) and
	// pass its state on.
	tc, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// identity is the client's name: its certificate CN when it has one, else its user name.
// OnConnectAuthenticate has checked that the two agree when both are present.
func identity(cl *mqtt.Client) string {
	if cn := certName(cl); cn != "" {
		return cn
	}
	return string(cl.Properties.Username)
}

// OnConnectAuthenticate authenticates a connecting client.
func (h *MQTT) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	var role Role
	name := user
	if cn := certName(cl); cn != "" {
		if user != "" && user != cn {
			return h.reject(cl, user, RejectCertUser)
		}
		name, role = cn, h.creds.Role(cn)
		if role == RoleNone {
			return h.reject(cl, cn, RejectBadIdentity)
		}
	} else {
		if user == "" {
			return h.reject(cl, user, RejectAnonymous)
		}
		role = h.creds.Check(user, string(pk.Connect.Password))
		if role == RoleNone {
			return h.reject(cl, user, RejectBadPassword)
		}
	}
	if role == RoleDevice && cl.ID != name || role != RoleFleet && wire.IsFleetClientID(cl.ID) {
		return h.reject(cl, name, RejectClientID)
	}
	if pk.Connect.WillFlag && !allowed(role, name, pk.Connect.WillTopic, true) {
		return h.reject(cl, name, RejectWillTopic)
	}
	h.mu.Lock()
	h.accepted++
	h.mu.Unlock()
	return true
}

func (h *MQTT) reject(cl *mqtt.Client, user, reason string) bool {
	h.mu.Lock()
	h.rejected[reason]++
	h.mu.Unlock()
	h.log.Info("mqtt connect refused", "reason", reason, "user", user, "client_id", cl.ID, "remote", cl.Net.Remote)
	return false
}

// OnACLCheck allows or denies a publish (write) to a topic or a subscription (read) to a
// filter; mochi also asks before delivering a message to a subscriber.
func (h *MQTT) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	name := identity(cl)
	ok := allowed(h.role(cl, name), name, topic, write)
	if !ok {
		h.mu.Lock()
		if write {
			h.deniedW++
		} else {
			h.deniedR++
		}
		h.mu.Unlock()
		h.log.Debug("mqtt acl denied", "identity", name, "client_id", cl.ID, "topic", topic, "write", write)
	}
	return ok
}

// role is the role of an authenticated client: by certificate name, or by the credentials its
// user name belongs to.
func (h *MQTT) role(cl *mqtt.Client, name string) Role {
	if certName(cl) != "" {
		return h.creds.Role(name)
	}
	h.creds.mu.RLock()
	defer h.creds.mu.RUnlock()
	if _, ok := h.creds.fleet[name]; ok {
		return RoleFleet
	}
	if _, ok := h.creds.devices[name]; ok {
		return RoleDevice
	}
	return RoleNone
}

// allowed is the topic ACL: whether identity name of role may publish to topic (write) or
// subscribe to filter topic.
func allowed(role Role, name, topic string, write bool) bool {
	switch role {
	case RoleFleet:
		return !write || isCmdTopic(topic)
	case RoleDevice:
		own := wire.Root + "/" + name + "/"
		cmd := own + wire.KindCmd + "/"
		if write {
			return strings.HasPrefix(topic, own) && !strings.HasPrefix(topic, cmd) && topic != own+wire.KindCmd
		}
		return strings.HasPrefix(topic, cmd)
	}
	return false
}

// isCmdTopic reports whether topic is vigil/v1/<device>/cmd/<name> with a valid device id and
// no wildcard.
func isCmdTopic(topic string) bool {
	rest, ok := strings.CutPrefix(topic, wire.Root+"/")
	if !ok || strings.ContainsAny(rest, "+#") {
		return false
	}
	device, rest, ok := strings.Cut(rest, "/")
	if !ok || !wire.ValidID(device) {
		return false
	}
	name, ok := strings.CutPrefix(rest, wire.KindCmd+"/")
	return ok && name != ""
}

// Stats returns the hook's counters.
func (h *MQTT) Stats() MQTTStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := MQTTStats{Accepted: h.accepted, Rejected: make(map[string]uint64, len(h.rejected)), DeniedPublish: h.deniedW, DeniedRead: h.deniedR}
	for k, v := range h.rejected {
		s.Rejected[k] = v
	}
	return s
}
