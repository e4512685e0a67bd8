// Microphone samples -> 100-ms blocks of 16-kHz mono s16le PCM, posted to the page.
// The context normally runs at 16 kHz (the browser resamples); when it could not, this
// resamples from the context's rate by linear interpolation.
const TARGET_RATE = 16000;
const BLOCK = 1600;

class PcmBlocks extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.position = 1; // where the next output sample lies, in input samples after `previous`
    this.previous = 0;
    this.block = new Int16Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const current = channel[i];
      // the output samples that fall between `previous` (at 0) and `current` (at 1)
      while (this.position <= 1) {
        this.push(this.previous + (current - this.previous) * this.position);
        this.position += this.step;
      }
      this.position -= 1;
      this.previous = current;
    }
    return true;
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.block[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.filled === BLOCK) {
      this.port.postMessage(this.block.buffer, [this.block.buffer]);
      this.block = new Int16Array(BLOCK);
      this.filled = 0;
    }
  }
}

registerProcessor("pcm-blocks", PcmBlocks);
