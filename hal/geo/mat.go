package geo

import "math"

// Vec3 is a 3-vector.
type Vec3 [3]float64

// Mat3 is a 3x3 matrix, row major.
type Mat3 [3][3]float64

// Mul returns m·o.
func (m Mat3) Mul(o Mat3) Mat3 {
	var r Mat3
	for i := range 3 {
		for j := range 3 {
			r[i][j] = m[i][0]*o[0][j] + m[i][1]*o[1][j] + m[i][2]*o[2][j]
		}
	}
	return r
}

// Apply returns m·v.
func (m Mat3) Apply(v Vec3) Vec3 {
	return Vec3{
		m[0][0]*v[0] + m[0][1]*v[1] + m[0][2]*v[2],
		m[1][0]*v[0] + m[1][1]*v[1] + m[1][2]*v[2],
		m[2][0]*v[0] + m[2][1]*v[1] + m[2][2]*v[2],
	}
}

// Euler returns Rz(yaw)·Ry(pitch)·Rx(roll) for angles in degrees: the rotation from a body
// frame with that attitude to its parent frame (Z-Y-X, aerospace convention).
func Euler(rollDeg, pitchDeg, yawDeg float64) Mat3 {
	sr, cr := math.Sincos(rad(rollDeg))
	sp, cp := math.Sincos(rad(pitchDeg))
	sy, cy := math.Sincos(rad(yawDeg))
	return Mat3{
		{cy * cp, cy*sp*sr - sy*cr, cy*sp*cr + sy*sr},
		{sy * cp, sy*sp*sr + cy*cr, sy*sp*cr - cy*sr},
		{-sp, cp * sr, cp * cr},
	}
}

// QuatToEuler converts a unit quaternion (w, x, y, z; body to parent, Hamilton convention as in
// MAVLink) to Z-Y-X Euler angles in degrees. Yaw is in (-180, 180].
//
// Within 0.1° of pitch ±90 (gimbal lock, e.g. a nadir camera) roll and yaw are not separable;
// there roll is 0 and the whole rotation about the vertical goes into yaw, so that angles of
// consecutive samples stay close and can be interpolated.
func QuatToEuler(w, x, y, z float64) (rollDeg, pitchDeg, yawDeg float64) {
	sp := 2 * (w*y - z*x)
	sp = math.Max(-1, math.Min(1, sp))
	pitch := math.Asin(sp)
	if math.Abs(sp) > math.Cos(rad(0.1)) {
		// R = Rz(yaw)·Ry(pitch) with roll 0: R01 = -sin(yaw), R11 = cos(yaw)
		yaw := math.Atan2(-2*(x*y-w*z), 1-2*(x*x+z*z))
		return 0, deg(pitch), deg(yaw)
	}
	roll := math.Atan2(2*(w*x+y*z), 1-2*(x*x+y*y))
	yaw := math.Atan2(2*(w*z+x*y), 1-2*(y*y+z*z))
	return deg(roll), deg(pitch), deg(yaw)
}

// EulerToQuat is the inverse of [QuatToEuler]: it returns (w, x, y, z).
func EulerToQuat(rollDeg, pitchDeg, yawDeg float64) (w, x, y, z float64) {
	sr, cr := math.Sincos(rad(rollDeg) / 2)
	sp, cp := math.Sincos(rad(pitchDeg) / 2)
	sy, cy := math.Sincos(rad(yawDeg) / 2)
	w = cr*cp*cy + sr*sp*sy
	x = sr*cp*cy - cr*sp*sy
	y = cr*sp*cy + sr*cp*sy
	z = cr*cp*sy - sr*sp*cy
	return w, x, y, z
}
