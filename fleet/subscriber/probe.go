package subscriber

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// A broker without MQTT shared subscriptions does not refuse a $share/… filter: nats-server
// (2.9) grants it and takes it as a literal topic, so the instances would receive nothing of
// the device traffic, or, on a broker that strips the prefix, every instance every message.
// The SUBACK says nothing; what the broker does says it all. So with a share group, after the
// first subscribe the subscriber publishes two probes to topics of its own, one under a plain
// subscription and one under a $share/<group>/… subscription: a broker that delivers the
// plain one but not the shared one within probeWait has no shared subscriptions, and the
// subscriber stops with an error that names --share-group (Config.OnFatal).

// probeRoot is the topic under which an instance probes shared subscriptions: only it
// subscribes to its own probe topics.
const probeRoot = "vigil-fleet/v1/probe"

// probeWait is how long the shared probe may take after the plain one arrived.
const probeWait = 2 * time.Second

// probe is the state of the shared-subscription check.
type probe struct {
	mu     sync.Mutex
	ok     bool            // the broker split a $share/… subscription
	nonce  string          // the probes in flight carry it
	got    map[string]bool // "plain", "shared": arrived with nonce
	change chan struct{}   // signalled when got changes (1-buffered)
}

func (p *probe) passed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

func (s *Subscriber) probeTopic(which string) string {
	return probeRoot + "/" + s.cfg.ShareGroup + "/" + instanceName(s.cfg.ClientID) + "/" + which
}

// probeFilters are the two subscriptions of the check.
func (s *Subscriber) probeFilters() map[string]byte {
	return map[string]byte{
		s.probeTopic("plain"): 1,
		"$share/" + s.cfg.ShareGroup + "/" + s.probeTopic("shared"): 1,
	}
}

// onProbe records a probe that came back.
func (s *Subscriber) onProbe(topic string, payload []byte) {
	which := topic[strings.LastIndexByte(topic, '/')+1:]
	p := &s.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nonce == "" || string(payload) != p.nonce || topic != s.probeTopic(which) {
		return // an old probe, or not ours
	}
	p.got[which] = true
	select {
	case p.change <- struct{}{}:
	default:
	}
}

// checkShared publishes the probes and waits for them. It returns an error only when the
// broker certainly lacks shared subscriptions (the plain probe came back, the shared one not);
// when neither came back it logs that the check could not be made and returns nil, and the
// next subscribe checks again.
func (s *Subscriber) checkShared(ctx context.Context) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	p := &s.probe
	p.mu.Lock()
	p.nonce, p.got, p.change = hex.EncodeToString(b[:]), map[string]bool{}, make(chan struct{}, 1)
	nonce, change := p.nonce, p.change
	p.mu.Unlock()
	for _, which := range []string{"plain", "shared"} {
		tok := s.client.Publish(s.probeTopic(which), 1, false, nonce)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			s.log.Warn("shared subscription check: probe not acknowledged; checking again at the next connect",
				"broker", redactList(s.cfg.BrokerURL), "err", tok.Error())
			return nil
		}
	}
	overall := time.NewTimer(3 * probeWait)
	defer overall.Stop()
	var plainAt <-chan time.Time
	for {
		p.mu.Lock()
		plain, shared := p.got["plain"], p.got["shared"]
		if shared {
			p.ok = true
		}
		p.mu.Unlock()
		if shared {
			s.log.Info("the broker splits shared subscriptions", "group", s.cfg.ShareGroup)
			return nil
		}
		if plain && plainAt == nil {
			plainAt = time.After(probeWait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-change:
		case <-plainAt:
			return fmt.Errorf("--share-group %s: the broker at %s does not support MQTT shared subscriptions: "+
				"a probe on a plain subscription came back, the one on $share/%s/%s did not within %v "+
				"(nats-server, for one, takes $share/… as a plain topic). With nats-server use "+
				"--ingest nats://HOST:4222,… instead of --share-group; other brokers: see docs/SCALING.md",
				s.cfg.ShareGroup, redactList(s.cfg.BrokerURL), s.cfg.ShareGroup, s.probeTopic("shared"), probeWait)
		case <-overall.C:
			s.log.Warn("shared subscription check: no probe came back; checking again at the next connect",
				"broker", redactList(s.cfg.BrokerURL))
			return nil
		}
	}
}
