/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the SPA with hot reload and forwards to `ordexa web` (make dev), which
// in turn forwards /api to the API; the production build is served by `ordexa web` itself.
const web = process.env.ORDEXA_WEB_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': web,
      '/dev': web,
      '/config.json': web,
    },
  },
  build: {
    outDir: 'dist',
    sourcemap: false,
    // Hashed names under assets/: `ordexa web` caches them for a year.
    assetsDir: 'assets',
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test-setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
