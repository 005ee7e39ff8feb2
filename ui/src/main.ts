import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";

// If the UI itself fails (a bug, not an engine error), say so on screen
// instead of leaving an empty window.
function fatal(message: string) {
  const box = document.createElement("pre");
  box.className = "fatal";
  box.setAttribute("role", "alert");
  box.textContent = `Spectrum Studio's window failed: ${message}`;
  document.body.prepend(box);
}
window.addEventListener("error", (e) => fatal(e.message));
window.addEventListener("unhandledrejection", (e) => fatal(String(e.reason?.message ?? e.reason)));

try {
  mount(App, { target: document.getElementById("app")! });
} catch (e) {
  fatal(e instanceof Error ? `${e.message}\n${e.stack}` : String(e));
}
