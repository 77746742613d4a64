/**
 * New-session and new-message alerts: a short tone (Web Audio, no sound file to download) and a
 * desktop notification while the tab is in the background. Both are switchable and remembered per
 * browser; desktop notifications ask the browser's permission when first switched on.
 */
import { reactive } from 'vue';

const KEY = 'sb.agent.notify';

export interface NotifySettings {
  sound: boolean;
  desktop: boolean;
}

export interface Notifier {
  settings: NotifySettings;
  /** Switches desktop notifications; asks for permission when turning them on. */
  setDesktop(on: boolean): Promise<void>;
  setSound(on: boolean): void;
  notify(title: string, body: string): void;
}

export function createNotifier(): Notifier {
  let saved: Partial<NotifySettings> = {};
  try {
    saved = JSON.parse(localStorage.getItem(KEY) ?? '{}') as Partial<NotifySettings>;
  } catch {
    saved = {};
  }
  const settings = reactive<NotifySettings>({ sound: saved.sound ?? true, desktop: saved.desktop ?? false });
  const persist = (): void => localStorage.setItem(KEY, JSON.stringify(settings));
  let audio: AudioContext | undefined;
  let lastTone = 0;

  const tone = (): void => {
    const now = Date.now();
    if (now - lastTone < 1000) return; // a burst of messages is one tone
    lastTone = now;
    try {
      audio ??= new AudioContext();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.15, audio.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.3);
    } catch {
      // No audio output (or not allowed before a user gesture): the badge still shows.
    }
  };

  return {
    settings,
    async setDesktop(on) {
      if (on && typeof Notification !== 'undefined' && Notification.permission === 'default')
        await Notification.requestPermission();
      settings.desktop = on && typeof Notification !== 'undefined' && Notification.permission === 'granted';
      persist();
    },
    setSound(on) {
      settings.sound = on;
      persist();
    },
    notify(title, body) {
      if (settings.sound) tone();
      if (
        settings.desktop &&
        document.hidden &&
        typeof Notification !== 'undefined' &&
        Notification.permission === 'granted'
      ) {
        const n = new Notification(title, { body: body.slice(0, 140), tag: 'switchboard' });
        n.onclick = () => {
          window.focus();
          n.close();
        };
      }
    },
  };
}
