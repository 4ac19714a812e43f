// Which keys each layer's attention sees (context.ts layerWindow): the window on every layer where the config sets one
// (Mistral; a Qwen config whose every layer slides), on the listed layers alone where only some slide (Qwen's
// max_window_layers / layer_types), none without a window. The model-level checks are the fixtures' (hf-fixtures).
import { describe, expect, it } from 'vitest';
import { layerWindow, type ModelShape } from '../../src/model/context.js';

const shape = (o: Partial<ModelShape>) => o as ModelShape;

describe('layerWindow', () => {
  it('the window on every layer, on the listed ones, or none', () => {
    expect([0, 1, 5].map((l) => layerWindow(shape({ slidingWindow: 4 }), l))).toEqual([4, 4, 4]);
    expect([0, 1, 5].map((l) => layerWindow(shape({ slidingWindow: 4, windowLayers: null }), l))).toEqual([4, 4, 4]);
    expect([0, 1].map((l) => layerWindow(shape({ slidingWindow: 4, windowLayers: [false, true] }), l))).toEqual([0, 4]);
    expect([0, 1].map((l) => layerWindow(shape({ slidingWindow: null }), l))).toEqual([0, 0]);
  });
});
