// The new-ticket sound: two short tones made with the Web Audio API (no audio file). Browsers only let sound
// start after the user has touched the page, so the audio context is made on the first tap or key press.

export class Beeper {
  constructor(muted = false) {
    this.muted = muted;
    this.context = null;
    const unlock = () => this.unlock();
    window.addEventListener("pointerdown", unlock, { once: true });
    window.addEventListener("keydown", unlock, { once: true });
  }

  // Whether the browser lets the display make a sound yet.
  get ready() {
    return this.context !== null && this.context.state === "running";
  }

  unlock() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!this.context) this.context = new Context();
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
  }

  // Plays the beep unless muted or the sound is not unlocked yet.
  beep() {
    if (this.muted || !this.ready) return;
    const now = this.context.currentTime;
    [880, 1320].forEach((frequency, index) => {
      const start = now + index * 0.18;
      const oscillator = this.context.createOscillator();
      const gain = this.context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.4, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.15);
      oscillator.connect(gain).connect(this.context.destination);
      oscillator.start(start);
      oscillator.stop(start + 0.16);
    });
  }
}
