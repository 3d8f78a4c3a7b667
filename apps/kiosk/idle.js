// The idle watch: after `seconds` without a touch, a key or typing it calls `onExpire()`; for the last `warnSeconds`
// it calls `onWarn(left)` every second (the "are you still there?" countdown; at most half the idle time, so a short
// idle time still leaves a calm moment), and `onWarn(null)` when someone touches the screen again. It only runs while
// armed (a customer is ordering).

const ACTIVITY = ["pointerdown", "keydown", "input", "wheel", "touchstart"];

export class IdleWatch {
  constructor({ seconds, warnSeconds = 15, onWarn, onExpire }) {
    this.seconds = seconds;
    this.warnSeconds = Math.min(warnSeconds, seconds / 2);
    this.onWarn = onWarn;
    this.onExpire = onExpire;
    this.armed = false;
    this.warning = false;
    this.last = Date.now();
    this.timer = null;
    const touched = () => this.touch();
    for (const type of ACTIVITY) document.addEventListener(type, touched, { capture: true, passive: true });
  }

  /** Start watching (again, from now). */
  arm() {
    this.armed = true;
    this.touch();
    clearInterval(this.timer);
    this.timer = setInterval(() => this._tick(), 250);
  }

  /** Stop watching. */
  disarm() {
    this.armed = false;
    clearInterval(this.timer);
    this.timer = null;
    this._unwarn();
  }

  touch() {
    this.last = Date.now();
    this._unwarn();
  }

  _unwarn() {
    if (!this.warning) return;
    this.warning = false;
    this.onWarn(null);
  }

  _tick() {
    const left = this.seconds - (Date.now() - this.last) / 1000;
    if (left <= 0) {
      this.disarm();
      this.onExpire();
    } else if (left <= this.warnSeconds) {
      this.warning = true;
      this.onWarn(Math.ceil(left));
    }
  }
}
