package frame

// Geo is where one detected object stands on the ground, worked out from the camera's pose at
// the frame's capture time (the agent's drone mode). The zero value, OK false, is an object that
// was not located; Detections.GeoStatus says why.
type Geo struct {
	OK       bool
	Lat, Lon float64 // WGS-84 degrees
	ErrM     float64 // 1-sigma horizontal error radius, metres
}
