package track

import "github.com/vigil-edge/vigil/models"

// The box filter follows ByteTrack's (and DeepSORT's): the state is the box centre (cx, cy),
// its aspect ratio a = w/h and its height h, each with a velocity, under a constant-velocity
// model with noise scaled by the box height. Because the process and measurement noise are
// diagonal and each coordinate moves only with its own velocity, the 8-dimensional filter
// splits exactly into four independent 2-state filters (position, velocity), which is what
// is kept here. Velocities are per second: a prediction over dt seconds moves p by v·dt and
// adds process noise proportional to dt (a random walk), so the filter behaves the same at
// any detection rate. ByteTrack's per-frame noise at 30 fps is the reference.
const (
	refInterval  = 1.0 / 30 // seconds: ByteTrack's noise weights are per frame at 30 fps
	stdWeightPos = 1.0 / 20
	stdWeightVel = 1.0 / 160
	stdAspectPos = 1e-2
	stdAspectVel = 1e-5
	stdAspectMea = 1e-1
	minHeight    = 1.0
)

// axis is one coordinate and its velocity with their 2×2 covariance.
type axis struct {
	p, v          float64
	ppp, ppv, pvv float64 // covariance: var(p), cov(p,v), var(v)
}

func (a *axis) predict(dt, qp, qv float64) {
	a.p += a.v * dt
	// P = F P Fᵀ + Q with F = [1 dt; 0 1].
	ppp := a.ppp + 2*dt*a.ppv + dt*dt*a.pvv + qp
	ppv := a.ppv + dt*a.pvv
	a.ppp, a.ppv, a.pvv = ppp, ppv, a.pvv+qv
}

func (a *axis) update(z, r float64) {
	s := a.ppp + r
	k0, k1 := a.ppp/s, a.ppv/s
	y := z - a.p
	a.p += k0 * y
	a.v += k1 * y
	ppp, ppv, pvv := a.ppp, a.ppv, a.pvv
	a.ppp = ppp - k0*ppp
	a.ppv = ppv - k0*ppv
	a.pvv = pvv - k1*ppv
}

// kalman is the box filter: cx, cy, aspect, height.
type kalman struct {
	cx, cy, a, h axis
}

func measure(b models.Box) (cx, cy, a, h float64) {
	w := float64(b.X2 - b.X1)
	h = max(float64(b.Y2-b.Y1), minHeight)
	return float64(b.X1+b.X2) / 2, float64(b.Y1+b.Y2) / 2, max(w, 0) / h, h
}

func newKalman(b models.Box) kalman {
	cx, cy, a, h := measure(b)
	sp := 2 * stdWeightPos * h
	sv := 10 * stdWeightVel * h / refInterval
	sa, sav := 2*stdAspectPos, 10*stdAspectVel/refInterval
	ax := func(p, sp, sv float64) axis { return axis{p: p, ppp: sp * sp, pvv: sv * sv} }
	return kalman{cx: ax(cx, sp, sv), cy: ax(cy, sp, sv), a: ax(a, sa, sav), h: ax(h, sp, sv)}
}

// predict moves the state dt seconds ahead.
func (k *kalman) predict(dt float64) {
	h := max(k.h.p, minHeight)
	f := dt / refInterval // noise variances grow linearly with time
	qp := sq(stdWeightPos*h) * f
	qv := sq(stdWeightVel*h/refInterval) * f
	k.cx.predict(dt, qp, qv)
	k.cy.predict(dt, qp, qv)
	k.h.predict(dt, qp, qv)
	k.a.predict(dt, sq(stdAspectPos)*f, sq(stdAspectVel/refInterval)*f)
	if k.h.p < minHeight {
		k.h.p = minHeight
	}
}

// update corrects the state with a measured box.
func (k *kalman) update(b models.Box) {
	cx, cy, a, h := measure(b)
	r := sq(stdWeightPos * max(k.h.p, minHeight))
	k.cx.update(cx, r)
	k.cy.update(cy, r)
	k.h.update(h, r)
	k.a.update(a, sq(stdAspectMea))
	if k.h.p < minHeight {
		k.h.p = minHeight
	}
}

// box is the current estimate as corners.
func (k *kalman) box() models.Box {
	h := max(k.h.p, minHeight)
	w := max(k.a.p, 0) * h
	return models.Box{
		X1: float32(k.cx.p - w/2), Y1: float32(k.cy.p - h/2),
		X2: float32(k.cx.p + w/2), Y2: float32(k.cy.p + h/2),
	}
}

func sq(x float64) float64 { return x * x }
