import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

// Two pages: the agent workspace (index.html) and the visitor chat window (chat.html). The gateway
// serves the built files from console/dist.
export default defineConfig({
  root,
  base: '/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    rollupOptions: {
      input: { index: `${root}index.html`, chat: `${root}chat.html` },
      output: {
        // Vue, the realtime client, texts and base styles are shared by both pages: one cacheable chunk.
        manualChunks: (id) =>
          /node_modules|modulepreload-polyfill|export-helper|\/protos\/|\/console\/src\/(realtime\/|i18n\.ts|base\.css)/.test(
            id,
          )
            ? 'shared'
            : undefined,
      },
    },
  },
  server: {
    fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] },
    proxy: { '/v1': { target: 'http://127.0.0.1:8080', ws: true } },
  },
});
