import type { AdminApi } from './api.js';
import { h, replace } from './dom.js';

/** What every screen is handed: the API, a way to report, and the app list (for names in events). */
export interface Shell {
  api: AdminApi;
  notify(text: string, error?: boolean): void;
  fail(err: unknown): void;
  apps(): Promise<AppSummary[]>;
  /** Forgets the cached app list (after a change). */
  refreshApps(): void;
}

export interface AppSummary {
  id: string;
  name: string;
  profile: string;
  public: boolean;
  description: string;
  policy: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** A screen: renders into its element, and stops its timers when left. */
export interface Screen {
  el: HTMLElement;
  dispose?(): void;
}

export function statusLine(): { el: HTMLElement; show(text: string, error?: boolean): void } {
  const el = h('div', { class: 'status hidden', role: 'status', 'aria-live': 'polite' });
  let timer: number | null = null;
  return {
    el,
    show(text, error = false) {
      replace(el, text);
      el.className = `status${error ? ' error' : ''}`;
      if (timer !== null) window.clearTimeout(timer);
      timer = window.setTimeout(() => { el.className = 'status hidden'; }, error ? 8000 : 4000);
    },
  };
}
