package mavlink

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/bluenviron/gomavlib/v3"
	"github.com/bluenviron/gomavlib/v3/pkg/dialects/common"
	"github.com/bluenviron/gomavlib/v3/pkg/frame"
	"github.com/bluenviron/gomavlib/v3/pkg/message"

	"github.com/vigil-edge/vigil/hal/geo"
)

// Client follows one vehicle's telemetry.
//
// Call contract: New validates and does no I/O; Start opens the endpoint and starts the one
// goroutine that reads it, at most once; Close stops it and waits for it, and may be called any
// number of times, also without Start. PoseAt, Snapshot and Stats are safe for concurrent use at
// any time.
type Client struct {
	cfg      Config
	endpoint Endpoint
	now      func() time.Time

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}

	mu         sync.Mutex
	sysID      uint8 // followed system, 0 until locked
	apComp     uint8 // its autopilot component, 0 until a heartbeat
	clocks     map[uint8]*bootClock
	pos        history[posSample]
	att        history[attSample]
	gps        history[gpsSample]
	gim        history[gimbalSample]
	hb         heartbeatInfo
	sysTime    systemTime
	linkUp     bool
	linkLosses uint64
	parseErrs  uint64
	unsigned   uint64 // frames refused for their signature (missing, wrong, replayed)
	foreign    uint64 // messages from a system other than the one followed
	rejected   uint64
	outOfOrder uint64
	msgCount   map[string]uint64
	msgLast    map[string]time.Time
	names      map[reflect.Type]string
}

type heartbeatInfo struct {
	last       time.Time
	vehicle    int
	autopilot  int
	baseMode   uint8
	customMode uint32
	status     int
}

type systemTime struct {
	recv     time.Time
	unixUsec uint64
}

// New returns a client for cfg, or an error naming the bad field.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mavlink config: %w", err)
	}
	cfg.setDefaults()
	ep, _ := ParseEndpoint(cfg.Endpoint)
	c := &Client{
		cfg:      cfg,
		endpoint: ep,
		now:      time.Now,
		sysID:    cfg.SystemID,
		clocks:   make(map[uint8]*bootClock),
		msgCount: make(map[string]uint64),
		msgLast:  make(map[string]time.Time),
		names:    make(map[reflect.Type]string),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(collector{c}); err != nil {
			return nil, fmt.Errorf("register mavlink metrics: %w", err)
		}
	}
	return c, nil
}

// Start opens the endpoint and starts reading. The reader stops when ctx is done or Close is
// called. A UDP listener or serial port that cannot be opened is an error; TCP and UDP clients
// keep retrying to connect in the background.
func (c *Client) Start(ctx context.Context) error {
	err := errors.New("mavlink client already started")
	c.startOnce.Do(func() {
		node := &gomavlib.Node{
			Endpoints:              []gomavlib.EndpointConf{c.endpoint.gomavlib()},
			Dialect:                common.Dialect,
			OutVersion:             gomavlib.V2,
			OutSystemID:            c.cfg.OutSystemID,
			OutComponentID:         c.cfg.OutComponentID,
			HeartbeatPeriod:        time.Second,
			HeartbeatSystemType:    int(common.MAV_TYPE_ONBOARD_CONTROLLER),
			HeartbeatAutopilotType: int(common.MAV_AUTOPILOT_INVALID),
			StreamRequestEnable:    c.cfg.StreamRequest,
			StreamRequestFrequency: 10,
		}
		if c.cfg.Key != nil {
			k := frame.V2Key(*c.cfg.Key)
			node.InKey, node.OutKey = &k, &k
		}
		if err = node.Initialize(); err != nil {
			err = fmt.Errorf("open mavlink endpoint %s: %w", c.endpoint, err)
			return
		}
		ctx, c.cancel = context.WithCancel(ctx)
		c.done = make(chan struct{})
		go c.run(ctx, node)
		c.cfg.Logger.Info("mavlink client started", "endpoint", c.endpoint.String())
	})
	return err
}

// Close stops the reader and waits for it.
func (c *Client) Close() error {
	c.startOnce.Do(func() {}) // a later Start does nothing
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	return nil
}

func (c *Client) run(ctx context.Context, node *gomavlib.Node) {
	defer close(c.done)
	defer node.Close()
	tick := time.NewTicker(c.cfg.LinkTimeout / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.checkLink(c.now())
		case evt, ok := <-node.Events():
			if !ok {
				return
			}
			switch e := evt.(type) {
			case *gomavlib.EventFrame:
				c.handleMessage(e.SystemID(), e.ComponentID(), e.Message(), c.now())
			case *gomavlib.EventParseError:
				c.mu.Lock()
				if c.cfg.Key != nil && isSignatureError(e.Error) {
					c.unsigned++
				} else {
					c.parseErrs++
				}
				c.mu.Unlock()
			case *gomavlib.EventChannelOpen:
				c.cfg.Logger.Debug("mavlink channel open", "channel", e.Channel.String())
			case *gomavlib.EventChannelClose:
				c.cfg.Logger.Debug("mavlink channel closed", "channel", e.Channel.String(), "err", e.Error)
			}
		}
	}
}

// isSignatureError tells a frame refused for its signature (gomavlib's reader with InKey:
// "signature required but packet is not v2", "signature not present", "wrong signature",
// "signature timestamp is too old") from a frame that does not parse.
func isSignatureError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "signature")
}

// checkLink marks the link down when the last heartbeat is too old.
func (c *Client) checkLink(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.linkUp && now.Sub(c.hb.last) > c.cfg.LinkTimeout {
		c.linkUp = false
		c.linkLosses++
		c.cfg.Logger.Warn("mavlink link lost", "system", c.sysID, "last_heartbeat", c.hb.last)
	}
}

// messageName turns *common.MessageGlobalPositionInt into GLOBAL_POSITION_INT; the caller
// holds the lock (names are cached per client).
func (c *Client) messageName(m message.Message) string {
	t := reflect.TypeOf(m)
	if n, ok := c.names[t]; ok {
		return n
	}
	name := "UNKNOWN" // a message outside the common dialect
	if _, raw := m.(*message.MessageRaw); !raw {
		var b strings.Builder
		for i, r := range strings.TrimPrefix(t.Elem().Name(), "Message") {
			if i > 0 && unicode.IsUpper(r) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
		name = b.String()
	}
	c.names[t] = name
	return name
}

// handleMessage updates the state with one decoded message received at recv.
func (c *Client) handleMessage(sys, comp uint8, m message.Message, recv time.Time) {
	if m == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	name := c.messageName(m)
	c.msgCount[name]++
	c.msgLast[name] = recv

	if c.cfg.SystemID != 0 && sys != c.cfg.SystemID {
		c.foreign++ // the pinned vehicle only
		return
	}
	if hb, ok := m.(*common.MessageHeartbeat); ok && hb.Autopilot != common.MAV_AUTOPILOT_INVALID {
		if c.sysID == 0 {
			c.sysID = sys
			c.cfg.Logger.Info("mavlink following vehicle", "system_id", sys, "component_id", comp)
		}
		if sys == c.sysID {
			c.apComp = comp
			c.hb = heartbeatInfo{last: recv, vehicle: int(hb.Type), autopilot: int(hb.Autopilot),
				baseMode: uint8(hb.BaseMode), customMode: hb.CustomMode, status: int(hb.SystemStatus)}
			if !c.linkUp {
				c.linkUp = true
				c.cfg.Logger.Info("mavlink link up", "system", sys)
			}
		}
		return
	}
	if sys != c.sysID || c.sysID == 0 {
		return
	}
	fromAutopilot := c.apComp == 0 || comp == c.apComp

	switch m := m.(type) {
	case *common.MessageGlobalPositionInt:
		if !fromAutopilot {
			return
		}
		s := posSample{
			lat: float64(m.Lat) / 1e7, lon: float64(m.Lon) / 1e7,
			altMSL: float64(m.Alt) / 1000, altRel: float64(m.RelativeAlt) / 1000,
			vn: float64(m.Vx) / 100, ve: float64(m.Vy) / 100, vd: float64(m.Vz) / 100,
		}
		if math.Abs(s.lat) > 90 || math.Abs(s.lon) > 180 || (m.Lat == 0 && m.Lon == 0) {
			c.rejected++
			return
		}
		s.t = c.clock(comp).local(m.TimeBootMs, recv)
		if !c.pos.add(s, c.cfg.History) {
			c.outOfOrder++
		}
	case *common.MessageAttitude:
		if !fromAutopilot {
			return
		}
		const d = 180 / math.Pi
		s := attSample{
			roll: float64(m.Roll) * d, pitch: float64(m.Pitch) * d, yaw: wrap180(float64(m.Yaw) * d),
			p: float64(m.Rollspeed), q: float64(m.Pitchspeed), r: float64(m.Yawspeed),
		}
		if !finiteAll(s.roll, s.pitch, s.yaw) || math.Abs(s.roll) > 180.01 || math.Abs(s.pitch) > 90.01 {
			c.rejected++
			return
		}
		s.t = c.clock(comp).local(m.TimeBootMs, recv)
		if !c.att.add(s, c.cfg.History) {
			c.outOfOrder++
		}
	case *common.MessageGpsRawInt:
		if !fromAutopilot {
			return
		}
		s := gpsSample{t: recv, fix: FixType(m.FixType), sats: int(m.SatellitesVisible)}
		if m.SatellitesVisible == math.MaxUint8 {
			s.sats = -1
		}
		if m.Eph != math.MaxUint16 {
			s.hdop = float64(m.Eph) / 100
		}
		if m.Epv != math.MaxUint16 {
			s.vdop = float64(m.Epv) / 100
		}
		s.hacc, s.vacc = float64(m.HAcc)/1000, float64(m.VAcc)/1000
		if !c.gps.add(s, c.cfg.History) {
			c.outOfOrder++
		}
	case *common.MessageSystemTime:
		if fromAutopilot {
			c.sysTime = systemTime{recv: recv, unixUsec: m.TimeUnixUsec}
		}
	case *common.MessageGimbalDeviceAttitudeStatus:
		w, x, y, z := float64(m.Q[0]), float64(m.Q[1]), float64(m.Q[2]), float64(m.Q[3])
		n := math.Sqrt(w*w + x*x + y*y + z*z)
		if !finiteAll(n) || n < 0.9 || n > 1.1 {
			c.rejected++
			return
		}
		var g Gimbal
		g.Roll, g.Pitch, g.Yaw = geo.QuatToEuler(w/n, x/n, y/n, z/n)
		switch {
		case m.Flags&common.GIMBAL_DEVICE_FLAGS_YAW_IN_EARTH_FRAME != 0:
			g.YawEarth = true
		case m.Flags&common.GIMBAL_DEVICE_FLAGS_YAW_IN_VEHICLE_FRAME != 0:
		default:
			g.YawEarth = m.Flags&common.GIMBAL_DEVICE_FLAGS_YAW_LOCK != 0
		}
		s := gimbalSample{t: c.clock(comp).local(m.TimeBootMs, recv), Gimbal: g}
		if !c.gim.add(s, c.cfg.History) {
			c.outOfOrder++
		}
	}
}

func (c *Client) clock(comp uint8) *bootClock {
	k := c.clocks[comp]
	if k == nil {
		k = &bootClock{}
		c.clocks[comp] = k
	}
	return k
}

// PoseAt returns the vehicle's pose at t (a host-clock time, typically a frame's capture time),
// interpolated from the history. Errors wrap ErrNoTelemetry, ErrStale or ErrNoFix.
func (c *Client) PoseAt(t time.Time) (Pose, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.poseAt(t)
}

// Stats are the client's counters.
type Stats struct {
	LinkUp      bool                 `json:"link_up"`
	LinkLosses  uint64               `json:"link_losses"`
	ParseErrors uint64               `json:"parse_errors"` // frames gomavlib could not parse
	Unsigned    uint64               `json:"unsigned"`     // frames dropped for their signature (with a key)
	Foreign     uint64               `json:"foreign"`      // messages from a system other than the pinned one
	Rejected    uint64               `json:"rejected"`     // parsed messages with impossible values
	OutOfOrder  uint64               `json:"out_of_order"` // samples not newer than the last one
	Messages    map[string]uint64    `json:"messages"`     // by MAVLink message name
	LastMessage map[string]time.Time `json:"last_message"` // receive time by message name
}

// Stats returns a copy of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{
		LinkUp: c.linkUp, LinkLosses: c.linkLosses, ParseErrors: c.parseErrs, Unsigned: c.unsigned, Foreign: c.foreign,
		Rejected: c.rejected, OutOfOrder: c.outOfOrder,
		Messages:    make(map[string]uint64, len(c.msgCount)),
		LastMessage: make(map[string]time.Time, len(c.msgLast)),
	}
	for k, v := range c.msgCount {
		s.Messages[k] = v
	}
	for k, v := range c.msgLast {
		s.LastMessage[k] = v
	}
	return s
}

// Snapshot is the current telemetry, for publishing.
type Snapshot struct {
	Time          time.Time `json:"time"`
	LinkUp        bool      `json:"link_up"`
	SystemID      uint8     `json:"system_id"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	VehicleType   int       `json:"vehicle_type"` // MAV_TYPE
	Autopilot     int       `json:"autopilot"`    // MAV_AUTOPILOT
	Armed         bool      `json:"armed"`
	CustomMode    uint32    `json:"custom_mode"`
	SystemStatus  int       `json:"system_status"` // MAV_STATE
	// AutopilotTime is the autopilot's UTC clock (SYSTEM_TIME) carried forward to Time; zero
	// when unknown.
	AutopilotTime time.Time `json:"autopilot_time"`
	// Pose is the pose now, or nil with PoseError saying why.
	Pose      *Pose  `json:"pose"`
	PoseError string `json:"pose_error,omitempty"`
	Stats     Stats  `json:"stats"`
}

// Snapshot returns the current telemetry.
func (c *Client) Snapshot() Snapshot {
	now := c.now()
	st := c.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{
		Time: now, LinkUp: c.linkUp, SystemID: c.sysID, LastHeartbeat: c.hb.last,
		VehicleType: c.hb.vehicle, Autopilot: c.hb.autopilot,
		Armed:      c.hb.baseMode&uint8(common.MAV_MODE_FLAG_SAFETY_ARMED) != 0,
		CustomMode: c.hb.customMode, SystemStatus: c.hb.status, Stats: st,
	}
	if c.sysTime.unixUsec > 0 {
		s.AutopilotTime = time.UnixMicro(int64(c.sysTime.unixUsec)).UTC().Add(now.Sub(c.sysTime.recv))
	}
	if p, err := c.poseAt(now); err != nil {
		s.PoseError = err.Error()
	} else {
		s.Pose = &p
	}
	return s
}
