// Package onvif finds ONVIF cameras and asks them for their RTSP streams: WS-Discovery
// (SOAP-over-UDP Probe / ProbeMatches, WS-Discovery 2005/04 as ONVIF Core specifies), the
// device service's GetCapabilities, and the media service's GetProfiles and GetStreamUri, with
// WS-Security UsernameToken digest authentication.
//
// Nothing here sends anywhere by default: Probe sends to the address it is given, unicast or
// the WS-Discovery multicast group (MulticastAddr) only when the caller names it.
package onvif

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// MulticastAddr is the WS-Discovery multicast group and port (IPv4). Probing it reaches every
// ONVIF device on the local network segment.
const MulticastAddr = "239.255.255.250:3702"

// Namespaces and actions of WS-Discovery 2005/04 as used by ONVIF.
const (
	nsSOAP        = "http://www.w3.org/2003/05/soap-envelope"
	nsAddressing  = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsDiscovery   = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
	nsNetwork     = "http://www.onvif.org/ver10/network/wsdl"
	actionProbe   = nsDiscovery + "/Probe"
	actionMatches = nsDiscovery + "/ProbeMatches"
	toDiscovery   = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
	anonymous     = nsAddressing + "/role/anonymous"
)

// maxDatagram bounds what Probe reads and what the parsers accept.
const maxDatagram = 64 << 10

// NewMessageID returns a fresh urn:uuid message id (random, RFC 4122 version 4).
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ProbeMessage is the WS-Discovery Probe for ONVIF video transmitters (cameras and encoders).
func ProbeMessage(messageID string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	b.WriteString(`<s:Envelope xmlns:s="` + nsSOAP + `" xmlns:a="` + nsAddressing + `">`)
	b.WriteString(`<s:Header>`)
	b.WriteString(`<a:Action s:mustUnderstand="1">` + actionProbe + `</a:Action>`)
	b.WriteString(`<a:MessageID>`)
	_ = xml.EscapeText(&b, []byte(messageID))
	b.WriteString(`</a:MessageID>`)
	b.WriteString(`<a:ReplyTo><a:Address>` + anonymous + `</a:Address></a:ReplyTo>`)
	b.WriteString(`<a:To s:mustUnderstand="1">` + toDiscovery + `</a:To>`)
	b.WriteString(`</s:Header><s:Body>`)
	b.WriteString(`<Probe xmlns="` + nsDiscovery + `"><d:Types xmlns:d="` + nsDiscovery + `" xmlns:dp0="` + nsNetwork + `">dp0:NetworkVideoTransmitter</d:Types></Probe>`)
	b.WriteString(`</s:Body></s:Envelope>`)
	return b.Bytes()
}

// ProbeMatch is one device that answered a Probe.
type ProbeMatch struct {
	Endpoint string   // its endpoint reference address, e.g. urn:uuid:...
	Types    []string // QNames, e.g. dn:NetworkVideoTransmitter
	Scopes   []string // e.g. onvif://www.onvif.org/name/Gate
	XAddrs   []string // device service URLs
	From     string   // the address the answer came from
}

// Name is the device's onvif://www.onvif.org/name/ scope, unescaped, or "".
func (m ProbeMatch) Name() string { return scopeValue(m.Scopes, "name") }

// Hardware is the device's onvif://www.onvif.org/hardware/ scope, or "".
func (m ProbeMatch) Hardware() string { return scopeValue(m.Scopes, "hardware") }

func scopeValue(scopes []string, kind string) string {
	prefix := "onvif://www.onvif.org/" + kind + "/"
	for _, s := range scopes {
		if v, ok := strings.CutPrefix(s, prefix); ok {
			return unescapeScope(v)
		}
	}
	return ""
}

// unescapeScope decodes a scope's %XX escapes; a malformed one leaves the scope as it is.
func unescapeScope(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}

// probeMatchesEnvelope reads a ProbeMatches message by local names.
type probeMatchesEnvelope struct {
	XMLName xml.Name `xml:"Envelope"`
	Header  struct {
		Action    string `xml:"Action"`
		RelatesTo string `xml:"RelatesTo"`
	} `xml:"Header"`
	Body struct {
		ProbeMatches *struct {
			Matches []struct {
				Address string `xml:"EndpointReference>Address"`
				Types   string `xml:"Types"`
				Scopes  string `xml:"Scopes"`
				XAddrs  string `xml:"XAddrs"`
			} `xml:"ProbeMatch"`
		} `xml:"ProbeMatches"`
	} `xml:"Body"`
}

// ErrNotProbeMatches: a datagram that is not a ProbeMatches message.
var ErrNotProbeMatches = errors.New("not a WS-Discovery ProbeMatches message")

// ParseProbeMatches reads a ProbeMatches message: the message id it answers and its matches.
// Matches without a usable http(s) XAddr are dropped.
func ParseProbeMatches(b []byte) (relatesTo string, matches []ProbeMatch, err error) {
	if len(b) > maxDatagram {
		return "", nil, fmt.Errorf("%w: %d bytes", ErrNotProbeMatches, len(b))
	}
	var env probeMatchesEnvelope
	if err := decodeXML(b, &env); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrNotProbeMatches, err)
	}
	if env.Body.ProbeMatches == nil || strings.TrimSpace(env.Header.Action) != actionMatches {
		return "", nil, fmt.Errorf("%w: action %q", ErrNotProbeMatches, strings.TrimSpace(env.Header.Action))
	}
	for _, m := range env.Body.ProbeMatches.Matches {
		pm := ProbeMatch{Endpoint: strings.TrimSpace(m.Address), Types: strings.Fields(m.Types), Scopes: strings.Fields(m.Scopes)}
		for _, x := range strings.Fields(m.XAddrs) {
			if strings.HasPrefix(x, "http://") || strings.HasPrefix(x, "https://") {
				pm.XAddrs = append(pm.XAddrs, x)
			}
		}
		if len(pm.XAddrs) > 0 {
			matches = append(matches, pm)
		}
	}
	return strings.TrimSpace(env.Header.RelatesTo), matches, nil
}

// decodeXML decodes one XML document strictly enough for outside input: no DTDs (so no
// entity expansion), a bounded depth.
func decodeXML(b []byte, v any) error {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	dec.Entity = nil
	depth := 0
	// Walk the tokens once to reject DTDs and absurd nesting, then decode for real.
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
		switch tok.(type) {
		case xml.Directive:
			return errors.New("XML directives (DTD) are not accepted")
		case xml.StartElement:
			depth++
			if depth > 64 {
				return errors.New("XML nested too deep")
			}
		case xml.EndElement:
			depth--
		}
	}
	return xml.Unmarshal(b, v)
}

// ProbeOptions tunes Probe.
type ProbeOptions struct {
	// Addr is where the Probe goes, host:port: a device's own address (unicast) or
	// MulticastAddr. Required: there is no default.
	Addr string
	// Wait is how long answers are collected; 3 s when 0.
	Wait time.Duration
}

// Probe sends one WS-Discovery Probe to opts.Addr and returns the devices that answered within
// opts.Wait (duplicates by endpoint merged), in the order they answered. Answers to other
// probes and datagrams that are not ProbeMatches are ignored.
func Probe(ctx context.Context, opts ProbeOptions) ([]ProbeMatch, error) {
	if opts.Addr == "" {
		return nil, errors.New("onvif probe: no address to probe (a device's host:port, or onvif.MulticastAddr)")
	}
	if opts.Wait <= 0 {
		opts.Wait = 3 * time.Second
	}
	raddr, err := net.ResolveUDPAddr("udp4", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("onvif probe: address %q: %w", opts.Addr, err)
	}
	local := &net.UDPAddr{}
	if raddr.IP.IsLoopback() {
		local.IP = net.IPv4(127, 0, 0, 1)
	}
	conn, err := net.ListenUDP("udp4", local)
	if err != nil {
		return nil, fmt.Errorf("onvif probe: %w", err)
	}
	defer conn.Close()
	id := NewMessageID()
	if _, err := conn.WriteToUDP(ProbeMessage(id), raddr); err != nil {
		return nil, fmt.Errorf("onvif probe: send to %s: %w", raddr, err)
	}
	deadline := time.Now().Add(opts.Wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	var out []ProbeMatch
	seen := map[string]bool{}
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, ctx.Err()
			}
			return out, fmt.Errorf("onvif probe: read: %w", err)
		}
		rel, ms, err := ParseProbeMatches(buf[:n])
		if err != nil || rel != id {
			continue
		}
		for _, m := range ms {
			m.XAddrs = fromHost(m.XAddrs, from.IP)
			if len(m.XAddrs) == 0 {
				continue
			}
			key := m.Endpoint
			if key == "" {
				key = m.XAddrs[0]
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			m.From = from.String()
			out = append(out, m)
		}
	}
}

// fromHost keeps the service addresses on the host that answered: an answer may not point us
// (and the credentials we send) at another machine.
func fromHost(xaddrs []string, ip net.IP) []string {
	var out []string
	for _, x := range xaddrs {
		u, err := url.Parse(x)
		if err != nil {
			continue
		}
		if hip := net.ParseIP(u.Hostname()); hip != nil && hip.Equal(ip) {
			out = append(out, x)
		}
	}
	return out
}

// ProbeRequest is a received WS-Discovery Probe (what a device reads).
type ProbeRequest struct {
	MessageID string
	Types     []string // QNames asked for; empty asks for every type
}

// ParseProbe reads a WS-Discovery Probe message.
func ParseProbe(b []byte) (ProbeRequest, error) {
	var env struct {
		Header struct {
			Action    string `xml:"Action"`
			MessageID string `xml:"MessageID"`
		} `xml:"Header"`
		Body struct {
			Probe *struct {
				Types string `xml:"Types"`
			} `xml:"Probe"`
		} `xml:"Body"`
	}
	if len(b) > maxDatagram {
		return ProbeRequest{}, fmt.Errorf("probe of %d bytes", len(b))
	}
	if err := decodeXML(b, &env); err != nil {
		return ProbeRequest{}, err
	}
	if strings.TrimSpace(env.Header.Action) != actionProbe || env.Body.Probe == nil {
		return ProbeRequest{}, fmt.Errorf("not a WS-Discovery Probe (action %q)", truncate(strings.TrimSpace(env.Header.Action), 80))
	}
	id := strings.TrimSpace(env.Header.MessageID)
	if id == "" {
		return ProbeRequest{}, errors.New("probe without MessageID")
	}
	return ProbeRequest{MessageID: id, Types: strings.Fields(env.Body.Probe.Types)}, nil
}

// ProbeMatchesMessage is a device's answer to the probe relatesTo.
func ProbeMatchesMessage(relatesTo string, m ProbeMatch, metadataVersion int) []byte {
	var b bytes.Buffer
	esc := func(s string) { _ = xml.EscapeText(&b, []byte(s)) }
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	b.WriteString(`<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + nsSOAP + `" xmlns:wsa="` + nsAddressing + `" xmlns:d="` + nsDiscovery + `" xmlns:dn="` + nsNetwork + `">`)
	b.WriteString(`<SOAP-ENV:Header><wsa:MessageID>` + NewMessageID() + `</wsa:MessageID><wsa:RelatesTo>`)
	esc(relatesTo)
	b.WriteString(`</wsa:RelatesTo><wsa:To SOAP-ENV:mustUnderstand="1">` + anonymous + `</wsa:To>`)
	b.WriteString(`<wsa:Action SOAP-ENV:mustUnderstand="1">` + actionMatches + `</wsa:Action></SOAP-ENV:Header>`)
	b.WriteString(`<SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>`)
	esc(m.Endpoint)
	b.WriteString(`</wsa:Address></wsa:EndpointReference><d:Types>`)
	esc(strings.Join(m.Types, " "))
	b.WriteString(`</d:Types><d:Scopes>`)
	esc(strings.Join(m.Scopes, " "))
	b.WriteString(`</d:Scopes><d:XAddrs>`)
	esc(strings.Join(m.XAddrs, " "))
	fmt.Fprintf(&b, `</d:XAddrs><d:MetadataVersion>%d</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`, metadataVersion)
	return b.Bytes()
}
