import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Tauri serves the built files from ui/dist; `npm run dev` serves them on 5173.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "safari15", chunkSizeWarningLimit: 2000 },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
