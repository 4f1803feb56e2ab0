package onvif

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// Stream is one RTSP stream a camera offers.
type Stream struct {
	Profile Profile
	URI     string // as the camera gave it, without credentials
}

// Camera is what Streams learned about one device.
type Camera struct {
	Match    ProbeMatch
	MediaURL string
	Streams  []Stream
}

// Streams asks the device m for its media service, its profiles and each profile's stream URI.
// Profiles without video, or whose URI cannot be had, are left out; the error is returned only
// when no stream was found.
func (c *Client) Streams(ctx context.Context, m ProbeMatch) (Camera, error) {
	cam := Camera{Match: m}
	var errs []error
	for _, x := range m.XAddrs {
		media, err := c.MediaXAddr(ctx, x)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := sameHost(x, media); err != nil {
			errs = append(errs, err)
			continue
		}
		ps, err := c.Profiles(ctx, media)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cam.MediaURL = media
		for _, p := range ps {
			if p.Encoding == "" {
				continue
			}
			u, err := c.StreamURI(ctx, media, p.Token)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cam.Streams = append(cam.Streams, Stream{Profile: p, URI: u})
		}
		if len(cam.Streams) > 0 {
			return cam, nil
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("the device offers no video profile"))
	}
	return cam, errors.Join(errs...)
}

// sameHost refuses a media service on another host than the device service: a device may
// only point at itself (a forged answer must not send our credentials elsewhere).
func sameHost(device, media string) error {
	d, err1 := url.Parse(device)
	m, err2 := url.Parse(media)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("onvif: bad service address %q", truncate(media, 80))
	}
	if d.Hostname() != m.Hostname() {
		return fmt.Errorf("onvif: the device at %s names a media service on another host (%s): not followed", d.Host, m.Host)
	}
	return nil
}

// WithCredentials puts user and password into an rtsp:// URI (percent-encoded).
func WithCredentials(uri, user, password string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("stream URI: %w", err)
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String(), nil
}
