import { AuthError, createBatch, uploadFile } from './api.js';
import { byId } from './dom.js';
import { bytes } from './format.js';

/**
 * Drag-and-drop (or chosen) JSONL file → upload with progress → create the batch.
 * `project()` is the project an admin key puts it in (null: the key's own).
 */
export function setupUpload(onCreated: () => void, project: () => string | null): void {
  const drop = byId('drop');
  const input = byId<HTMLInputElement>('file');
  const create = byId<HTMLButtonElement>('create');
  const bar = byId('upload-bar');
  const msg = byId('upload-msg');
  let file: File | null = null;

  const say = (text: string, error = false): void => {
    msg.textContent = text;
    msg.classList.toggle('err', error);
  };
  const choose = (f: File | undefined): void => {
    if (!f) return;
    file = f;
    create.disabled = false;
    bar.style.width = '0';
    say(`${f.name} (${bytes(f.size)}) ready`);
  };

  input.addEventListener('change', () => choose(input.files?.[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    choose(e.dataTransfer?.files[0]);
  });

  create.addEventListener('click', () => {
    if (!file) return;
    const f = file;
    create.disabled = true;
    say(`Uploading ${f.name}…`);
    void (async () => {
      try {
        const up = await uploadFile(f, project(), (x) => (bar.style.width = `${Math.round(x * 100)}%`));
        bar.style.width = '100%';
        const b = await createBatch(up.id, byId<HTMLSelectElement>('endpoint').value, byId<HTMLSelectElement>('window').value);
        say(`Created ${b.id} from ${up.id} (${bytes(up.bytes)})`);
        file = null;
        input.value = '';
        onCreated();
      } catch (err) {
        // Without a valid key the page shows the key form; the file stays chosen for afterwards.
        say(err instanceof AuthError ? '' : err instanceof Error ? err.message : String(err), !(err instanceof AuthError));
        create.disabled = false;
      }
    })();
  });
}
