// Package geo turns a pixel of a camera on a flying vehicle into a point on the ground.
//
// It is pure Go with no dependencies and no I/O; every function is safe for concurrent use.
//
// # Conventions
//
// Earth frame: local NED (x north, y east, z down), a tangent plane at the vehicle. Metres.
//
// Attitude: Z-Y-X (yaw, pitch, roll) Euler angles in degrees, aerospace convention, as reported
// by MAVLink's ATTITUDE message (after conversion from radians). The rotation that takes a
// vector from body coordinates to NED coordinates is
//
//	R = Rz(yaw) · Ry(pitch) · Rx(roll)
//
// so yaw 0 faces north and yaw 90 faces east; positive pitch raises the nose; positive roll lowers
// the right wing. The body frame is x forward, y right, z down.
//
// Camera frame (OpenCV style): z along the optical axis (forward), x to the right of the image,
// y down the image. A camera with zero mount angles looks along the body x axis (forward), with
// image right = body right and image down = body down. Mount and gimbal angles are Z-Y-X Euler
// angles of that "forward" camera: pitch -90 looks straight down (nadir) with the top of the
// image towards the direction the yaw points to.
//
// Pixels: continuous coordinates with (0,0) at the top-left corner of the top-left pixel, so the
// image centre of a W×H image is (W/2, H/2) and the centre of pixel (i,j) is (i+0.5, j+0.5).
// Callers geo-locating a detection box pass its bottom-centre, (x+w/2, y+h).
//
// Mount modes ([MountMode]):
//
//   - [MountBody]: angles relative to the vehicle body (a fixed mount, or a gimbal that reports
//     body-relative angles). R_ned_cam = R_vehicle · R_mount.
//   - [MountEarth]: roll, pitch and yaw absolute in NED (a yaw-lock stabilised gimbal; MAVLink
//     GIMBAL_DEVICE_FLAGS_YAW_IN_EARTH_FRAME). The vehicle attitude does not matter.
//   - [MountHeading]: roll and pitch relative to the horizon, yaw relative to the vehicle heading
//     (a stabilised gimbal in follow mode; MAVLink GIMBAL_DEVICE_FLAGS_YAW_IN_VEHICLE_FRAME).
//     R_ned_cam = Rz(vehicle yaw + yaw) · Ry(pitch) · Rx(roll).
//
// Ground: a horizontal plane at GroundAltMSL metres (flat earth at home altitude, or a configured
// ground altitude). The NED offset of the hit point is converted to latitude and longitude with the
// WGS-84 meridional and prime-vertical radii of curvature at the vehicle's latitude, which is good
// to well under a centimetre per kilometre for offsets of a few kilometres.
package geo
