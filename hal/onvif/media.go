package onvif

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Namespaces of the ONVIF device and media services and of WS-Security.
const (
	nsDevice     = "http://www.onvif.org/ver10/device/wsdl"
	nsMedia      = "http://www.onvif.org/ver10/media/wsdl"
	nsSchema     = "http://www.onvif.org/ver10/schema"
	nsWSSE       = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsWSU        = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	typeDigest   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
	typeBase64   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
	maxSOAPReply = 1 << 20
)

// PasswordDigest is WS-Security's UsernameToken digest: base64(SHA-1(nonce + created +
// password)), nonce being the raw bytes (sent base64-encoded).
func PasswordDigest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// securityHeader is the WS-Security UsernameToken header with a password digest.
func securityHeader(user, password string, now time.Time) string {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	created := now.UTC().Format("2006-01-02T15:04:05.000Z")
	var b strings.Builder
	b.WriteString(`<Security s:mustUnderstand="1" xmlns="` + nsWSSE + `"><UsernameToken><Username>`)
	_ = xml.EscapeText(&b, []byte(user))
	b.WriteString(`</Username><Password Type="` + typeDigest + `">` + PasswordDigest(nonce, created, password) + `</Password>`)
	b.WriteString(`<Nonce EncodingType="` + typeBase64 + `">` + base64.StdEncoding.EncodeToString(nonce) + `</Nonce>`)
	b.WriteString(`<Created xmlns="` + nsWSU + `">` + created + `</Created></UsernameToken></Security>`)
	return b.String()
}

// Client talks to one device's ONVIF services.
type Client struct {
	HTTP     *http.Client // http.DefaultClient when nil; give it a timeout
	User     string       // empty: requests go without a security header
	Password string
	Now      func() time.Time // for the UsernameToken's Created; time.Now when nil
}

// Fault is a SOAP fault answered by a device.
type Fault struct {
	HTTPStatus int
	Code       string // e.g. env:Sender
	Subcode    string // e.g. ter:NotAuthorized
	Reason     string
}

func (f *Fault) Error() string {
	s := "SOAP fault " + f.Code
	if f.Subcode != "" {
		s += "/" + f.Subcode
	}
	if f.Reason != "" {
		s += ": " + f.Reason
	}
	return s + " (HTTP " + strconv.Itoa(f.HTTPStatus) + ")"
}

// ErrNotAuthorized: the device refused the credentials (fault ter:NotAuthorized, or HTTP 401).
var ErrNotAuthorized = errors.New("the device refused the user name or password")

// Is makes errors.Is(fault, ErrNotAuthorized) true for an authentication fault.
func (f *Fault) Is(target error) bool {
	return target == ErrNotAuthorized && (strings.HasSuffix(f.Subcode, "NotAuthorized") || f.HTTPStatus == http.StatusUnauthorized)
}

type faultEnvelope struct {
	Body struct {
		Fault *struct {
			Code struct {
				Value   string `xml:"Value"`
				Subcode struct {
					Value string `xml:"Value"`
				} `xml:"Subcode"`
			} `xml:"Code"`
			Reason struct {
				Text string `xml:"Text"`
			} `xml:"Reason"`
		} `xml:"Fault"`
	} `xml:"Body"`
}

// ParseFault reads a SOAP 1.2 fault; nil when b holds none.
func ParseFault(status int, b []byte) *Fault {
	var env faultEnvelope
	if decodeXML(b, &env) != nil || env.Body.Fault == nil {
		return nil
	}
	f := env.Body.Fault
	return &Fault{HTTPStatus: status, Code: strings.TrimSpace(f.Code.Value), Subcode: strings.TrimSpace(f.Code.Subcode.Value),
		Reason: strings.TrimSpace(f.Reason.Text)}
}

// call posts one SOAP 1.2 request (body: the operation's element) to url and decodes the
// reply's Body into out.
func (c *Client) call(ctx context.Context, url, action, body string, out any) error {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="` + nsSOAP + `"><s:Header>`)
	if c.User != "" {
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		b.WriteString(securityHeader(c.User, c.Password, now()))
	}
	b.WriteString(`</s:Header><s:Body>` + body + `</s:Body></s:Envelope>`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(b.String()))
	if err != nil {
		return fmt.Errorf("onvif %s: %w", action, err)
	}
	req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="`+action+`"`)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("onvif %s: %w", shortAction(action), err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxSOAPReply+1))
	if err != nil {
		return fmt.Errorf("onvif %s: read reply: %w", shortAction(action), err)
	}
	if len(reply) > maxSOAPReply {
		return fmt.Errorf("onvif %s: reply larger than %d bytes", shortAction(action), maxSOAPReply)
	}
	if f := ParseFault(resp.StatusCode, reply); f != nil {
		return fmt.Errorf("onvif %s: %w", shortAction(action), f)
	}
	if resp.StatusCode != http.StatusOK {
		f := &Fault{HTTPStatus: resp.StatusCode, Reason: http.StatusText(resp.StatusCode)}
		return fmt.Errorf("onvif %s: %w", shortAction(action), f)
	}
	if err := decodeXML(reply, out); err != nil {
		return fmt.Errorf("onvif %s: reply: %w", shortAction(action), err)
	}
	return nil
}

func shortAction(a string) string { return a[strings.LastIndexByte(a, '/')+1:] }

// MediaXAddr asks the device service at deviceURL for its media service's address
// (GetCapabilities, category Media).
func (c *Client) MediaXAddr(ctx context.Context, deviceURL string) (string, error) {
	var env struct {
		Body struct {
			Resp *struct {
				XAddr string `xml:"Capabilities>Media>XAddr"`
			} `xml:"GetCapabilitiesResponse"`
		} `xml:"Body"`
	}
	err := c.call(ctx, deviceURL, nsDevice+"/GetCapabilities",
		`<GetCapabilities xmlns="`+nsDevice+`"><Category>Media</Category></GetCapabilities>`, &env)
	if err != nil {
		return "", err
	}
	if env.Body.Resp == nil || strings.TrimSpace(env.Body.Resp.XAddr) == "" {
		return "", errors.New("onvif GetCapabilities: the device names no media service")
	}
	return strings.TrimSpace(env.Body.Resp.XAddr), nil
}

// Profile is one media profile: a stream the camera offers.
type Profile struct {
	Token    string
	Name     string
	Encoding string // H264, H265, JPEG, MPEG4; "" when the profile has no video encoder
	Width    int
	Height   int
	FPS      int // the encoder's frame rate limit; 0 when not given
}

type profilesEnvelope struct {
	Body struct {
		Resp *struct {
			Profiles []struct {
				Token   string `xml:"token,attr"`
				Name    string `xml:"Name"`
				Encoder *struct {
					Encoding string `xml:"Encoding"`
					Width    int    `xml:"Resolution>Width"`
					Height   int    `xml:"Resolution>Height"`
					FPS      int    `xml:"RateControl>FrameRateLimit"`
				} `xml:"VideoEncoderConfiguration"`
			} `xml:"Profiles"`
		} `xml:"GetProfilesResponse"`
	} `xml:"Body"`
}

// ParseProfiles reads a GetProfilesResponse.
func ParseProfiles(b []byte) ([]Profile, error) {
	var env profilesEnvelope
	if err := decodeXML(b, &env); err != nil {
		return nil, err
	}
	return env.profiles()
}

func (env *profilesEnvelope) profiles() ([]Profile, error) {
	if env.Body.Resp == nil {
		return nil, errors.New("not a GetProfilesResponse")
	}
	var out []Profile
	for _, p := range env.Body.Resp.Profiles {
		pr := Profile{Token: strings.TrimSpace(p.Token), Name: strings.TrimSpace(p.Name)}
		if pr.Token == "" {
			continue
		}
		if e := p.Encoder; e != nil {
			pr.Encoding, pr.Width, pr.Height, pr.FPS = strings.TrimSpace(e.Encoding), max(e.Width, 0), max(e.Height, 0), max(e.FPS, 0)
		}
		out = append(out, pr)
	}
	return out, nil
}

// Profiles asks the media service for its profiles (GetProfiles).
func (c *Client) Profiles(ctx context.Context, mediaURL string) ([]Profile, error) {
	var env profilesEnvelope
	if err := c.call(ctx, mediaURL, nsMedia+"/GetProfiles", `<GetProfiles xmlns="`+nsMedia+`"/>`, &env); err != nil {
		return nil, err
	}
	ps, err := env.profiles()
	if err != nil {
		return nil, fmt.Errorf("onvif GetProfiles: %w", err)
	}
	return ps, nil
}

type streamURIEnvelope struct {
	Body struct {
		Resp *struct {
			URI string `xml:"MediaUri>Uri"`
		} `xml:"GetStreamUriResponse"`
	} `xml:"Body"`
}

// ParseStreamURI reads a GetStreamUriResponse.
func ParseStreamURI(b []byte) (string, error) {
	var env streamURIEnvelope
	if err := decodeXML(b, &env); err != nil {
		return "", err
	}
	return env.uri()
}

func (env *streamURIEnvelope) uri() (string, error) {
	if env.Body.Resp == nil {
		return "", errors.New("not a GetStreamUriResponse")
	}
	u := strings.TrimSpace(env.Body.Resp.URI)
	if !strings.HasPrefix(u, "rtsp://") && !strings.HasPrefix(u, "rtsps://") {
		return "", fmt.Errorf("stream URI %q is not rtsp:// or rtsps://", truncate(u, 80))
	}
	return u, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// StreamURI asks the media service for the RTSP URI of a profile (GetStreamUri, RTP unicast
// over RTSP).
func (c *Client) StreamURI(ctx context.Context, mediaURL, profileToken string) (string, error) {
	var tok bytes.Buffer
	_ = xml.EscapeText(&tok, []byte(profileToken))
	body := `<GetStreamUri xmlns="` + nsMedia + `"><StreamSetup><Stream xmlns="` + nsSchema + `">RTP-Unicast</Stream>` +
		`<Transport xmlns="` + nsSchema + `"><Protocol>RTSP</Protocol></Transport></StreamSetup>` +
		`<ProfileToken>` + tok.String() + `</ProfileToken></GetStreamUri>`
	var env streamURIEnvelope
	if err := c.call(ctx, mediaURL, nsMedia+"/GetStreamUri", body, &env); err != nil {
		return "", err
	}
	u, err := env.uri()
	if err != nil {
		return "", fmt.Errorf("onvif GetStreamUri: %w", err)
	}
	return u, nil
}
