// Package onvifsim is an ONVIF camera's discovery and media side for tests: it answers
// WS-Discovery Probes (SOAP over UDP) and serves the device service's GetCapabilities and the
// media service's GetProfiles and GetStreamUri over HTTP, checking WS-Security UsernameToken
// digests as a camera does. It binds 127.0.0.1 only and never sends to anyone but the sender
// of a Probe.
//
// Call contract: Start, then Close once (it waits for its goroutines).
package onvifsim

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-edge/vigil/hal/onvif"
)

// Profile is one media profile the simulated camera offers.
type Profile struct {
	Token, Name, Encoding string
	Width, Height, FPS    int
	URI                   string // its RTSP stream, e.g. a testvideos/server URL
}

// Config describes the simulated camera.
type Config struct {
	User, Password string // required of every service request
	Name, Hardware string // its onvif://www.onvif.org/name/ and /hardware/ scopes
	Profiles       []Profile
	// MediaHost overrides the host of the media service address GetCapabilities names (to
	// test a device pointing elsewhere); empty: its own.
	MediaHost string
}

// Camera is a running simulated camera.
type Camera struct {
	cfg      Config
	udp      *net.UDPConn
	ln       net.Listener
	srv      *http.Server
	endpoint string
	wg       sync.WaitGroup

	probes, authFailures atomic.Int64
}

// Start binds the UDP discovery port and the HTTP services on 127.0.0.1 (free ports).
func Start(cfg Config) (*Camera, error) {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		udp.Close()
		return nil, err
	}
	c := &Camera{cfg: cfg, udp: udp, ln: ln, endpoint: onvif.NewMessageID()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /onvif/device_service", c.device)
	mux.HandleFunc("POST /onvif/media_service", c.media)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_ = c.srv.Serve(ln)
	}()
	go func() {
		defer c.wg.Done()
		c.discovery()
	}()
	return c, nil
}

// ProbeAddr is the UDP address answering Probes.
func (c *Camera) ProbeAddr() string { return c.udp.LocalAddr().String() }

// DeviceURL is the device service's address, as its ProbeMatch gives it.
func (c *Camera) DeviceURL() string {
	return "http://" + c.ln.Addr().String() + "/onvif/device_service"
}

// Probes counts the Probes answered; AuthFailures the requests refused for their credentials.
func (c *Camera) Probes() int64       { return c.probes.Load() }
func (c *Camera) AuthFailures() int64 { return c.authFailures.Load() }

// Close stops both servers and waits for them.
func (c *Camera) Close() {
	_ = c.srv.Close()
	_ = c.udp.Close()
	c.wg.Wait()
}

func (c *Camera) discovery() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.udp.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		if !from.IP.IsLoopback() {
			continue // never answer outside loopback
		}
		p, err := onvif.ParseProbe(buf[:n])
		if err != nil {
			continue
		}
		if len(p.Types) > 0 && !slices.ContainsFunc(p.Types, func(t string) bool { return strings.HasSuffix(t, ":NetworkVideoTransmitter") }) {
			continue
		}
		c.probes.Add(1)
		m := onvif.ProbeMatch{Endpoint: c.endpoint, Types: []string{"dn:NetworkVideoTransmitter", "tds:Device"},
			Scopes: []string{"onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/Profile/Streaming",
				"onvif://www.onvif.org/name/" + scopeEscape(c.cfg.Name), "onvif://www.onvif.org/hardware/" + scopeEscape(c.cfg.Hardware)},
			XAddrs: []string{c.DeviceURL()}}
		_, _ = c.udp.WriteToUDP(onvif.ProbeMatchesMessage(p.MessageID, m, 1), from)
	}
}

func scopeEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), " ", "%20")
}

type usernameToken struct {
	Username string `xml:"Username"`
	Password struct {
		Type  string `xml:"Type,attr"`
		Value string `xml:",chardata"`
	} `xml:"Password"`
	Nonce   string `xml:"Nonce"`
	Created string `xml:"Created"`
}

// request is the part of an incoming SOAP request the services read.
type request struct {
	Header struct {
		Token *usernameToken `xml:"Security>UsernameToken"`
	} `xml:"Header"`
	Body struct {
		GetCapabilities *struct{} `xml:"GetCapabilities"`
		GetProfiles     *struct{} `xml:"GetProfiles"`
		GetStreamUri    *struct {
			Stream       string `xml:"StreamSetup>Stream"`
			Protocol     string `xml:"StreamSetup>Transport>Protocol"`
			ProfileToken string `xml:"ProfileToken"`
		} `xml:"GetStreamUri"`
	} `xml:"Body"`
}

// read parses and authenticates a request; on failure it has answered with a fault.
func (c *Camera) read(w http.ResponseWriter, r *http.Request) (*request, bool) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/soap+xml") {
		fault(w, http.StatusBadRequest, "env:Sender", "ter:WellFormed", "content type must be application/soap+xml")
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, false
	}
	var req request
	if err := xml.Unmarshal(b, &req); err != nil {
		fault(w, http.StatusBadRequest, "env:Sender", "ter:WellFormed", "malformed request")
		return nil, false
	}
	if err := c.authenticate(req.Header.Token); err != nil {
		c.authFailures.Add(1)
		fault(w, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized", "Sender not Authorized: "+err.Error())
		return nil, false
	}
	return &req, true
}

func (c *Camera) authenticate(tok *usernameToken) error {
	if tok == nil {
		return errors.New("no UsernameToken")
	}
	if tok.Username != c.cfg.User {
		return errors.New("unknown user")
	}
	if !strings.HasSuffix(tok.Password.Type, "#PasswordDigest") {
		return errors.New("password must be a digest")
	}
	nonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok.Nonce))
	if err != nil || len(nonce) == 0 {
		return errors.New("bad nonce")
	}
	created, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(tok.Created))
	if err != nil || time.Since(created).Abs() > 5*time.Minute {
		return errors.New("created out of range")
	}
	if onvif.PasswordDigest(nonce, strings.TrimSpace(tok.Created), c.cfg.Password) != strings.TrimSpace(tok.Password.Value) {
		return errors.New("wrong digest")
	}
	return nil
}

const envOpen = `<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"` +
	` xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"` +
	` xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body>`
const envClose = `</SOAP-ENV:Body></SOAP-ENV:Envelope>`

func reply(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	_, _ = io.WriteString(w, envOpen+body+envClose)
}

func fault(w http.ResponseWriter, status int, code, subcode, reason string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `%s<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>%s</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>%s</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">%s</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>%s`,
		envOpen, code, subcode, esc(reason), envClose)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (c *Camera) device(w http.ResponseWriter, r *http.Request) {
	req, ok := c.read(w, r)
	if !ok {
		return
	}
	if req.Body.GetCapabilities == nil {
		fault(w, http.StatusBadRequest, "env:Receiver", "ter:ActionNotSupported", "only GetCapabilities is simulated")
		return
	}
	host := c.ln.Addr().String()
	if c.cfg.MediaHost != "" {
		_, port, _ := net.SplitHostPort(host)
		host = net.JoinHostPort(c.cfg.MediaHost, port)
	}
	reply(w, `<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>http://`+host+`/onvif/media_service</tt:XAddr>`+
		`<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities>`+
		`</tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>`)
}

func (c *Camera) media(w http.ResponseWriter, r *http.Request) {
	req, ok := c.read(w, r)
	if !ok {
		return
	}
	switch {
	case req.Body.GetProfiles != nil:
		var b strings.Builder
		b.WriteString(`<trt:GetProfilesResponse>`)
		for _, p := range c.cfg.Profiles {
			fmt.Fprintf(&b, `<trt:Profiles token="%s" fixed="true"><tt:Name>%s</tt:Name>`+
				`<tt:VideoSourceConfiguration token="VideoSourceConfig"><tt:Name>VideoSource</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken><tt:Bounds x="0" y="0" width="%d" height="%d"/></tt:VideoSourceConfiguration>`+
				`<tt:VideoEncoderConfiguration token="VideoEncoder_%s"><tt:Name>%s</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>%s</tt:Encoding>`+
				`<tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution><tt:Quality>4</tt:Quality>`+
				`<tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl>`+
				`<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration></trt:Profiles>`,
				esc(p.Token), esc(p.Name), p.Width, p.Height, esc(p.Token), esc(p.Name), esc(p.Encoding), p.Width, p.Height, p.FPS)
		}
		b.WriteString(`</trt:GetProfilesResponse>`)
		reply(w, b.String())
	case req.Body.GetStreamUri != nil:
		g := req.Body.GetStreamUri
		if strings.TrimSpace(g.Stream) != "RTP-Unicast" || strings.TrimSpace(g.Protocol) != "RTSP" {
			fault(w, http.StatusBadRequest, "env:Sender", "ter:InvalidArgVal", "unsupported stream setup")
			return
		}
		for _, p := range c.cfg.Profiles {
			if p.Token == strings.TrimSpace(g.ProfileToken) {
				reply(w, `<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>`+esc(p.URI)+`</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>`+
					`<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>`)
				return
			}
		}
		fault(w, http.StatusBadRequest, "env:Sender", "ter:NoProfile", "no profile "+g.ProfileToken)
	default:
		fault(w, http.StatusBadRequest, "env:Receiver", "ter:ActionNotSupported", "not simulated")
	}
}
