// API keys: this page is being built; it shows its heading only.
import { h } from '../lib/ui.js';

export async function render(view) {
  view.el.append(h('h1', 'API keys'));
}
