// Package mavlink is a MAVLink telemetry client for a companion computer: it listens to an
// autopilot (and its gimbal) over UDP, TCP or a serial port with gomavlib (common dialect) and
// answers "where was the vehicle, and how was it and its camera oriented, at time t?".
//
// # Timing
//
// Every sample is placed on the host's clock. Messages that carry time_boot_ms (ATTITUDE,
// GLOBAL_POSITION_INT, GIMBAL_DEVICE_ATTITUDE_STATUS) are mapped through a per-component boot
// epoch estimated as the minimum of (receive time - time_boot_ms), i.e. the least-delayed
// message, relaxed upwards by 100 ppm of elapsed time to follow clock drift and reset when
// time_boot_ms jumps back (a reboot). GPS_RAW_INT is placed at its receive time (it is used as a
// step function). The timestamps of a frame given to [Client.PoseAt] must come from the same host
// clock (time.Now at capture, not a camera's own clock).
//
// # Pose
//
// [Client.PoseAt] interpolates the bounded history (Config.History, default 10 s): linearly for
// position, along the shortest arc for angles. Past the newest sample, position is extrapolated
// with the reported velocity and attitude with the reported body rates, for at most
// Config.MaxAge; beyond that the pose is stale ([ErrStale]).
//
// Angles follow hal/geo: degrees, Z-Y-X Euler, NED; yaw 0 = north, positive clockwise. The
// gimbal's quaternion is converted to Euler angles; its yaw is either in the earth frame or
// relative to the vehicle heading (roll and pitch are relative to the horizon in both cases), as
// GIMBAL_DEVICE_ATTITUDE_STATUS's flags say.
//
// # Metrics
//
// The client registers nothing globally. [Client.Stats] returns its counters, and when
// Config.Registerer is set the client registers a collector with vigil_mavlink_* metrics:
// link_up, link_losses_total, parse_errors_total, rejected_messages_total,
// messages_total{type}, message_age_seconds{type}, gps_fix_type, gps_satellites.
package mavlink
