// Chat templates are Python Jinja: a string's strip / lstrip / rstrip take the characters to strip, as
// Python's do. @huggingface/jinja ignored the argument and trimmed whitespace, so Qwen3's
// `content.lstrip('\n')` dropped a response's leading space (found by the chat-template audit against
// transformers' apply_chat_template).
import { describe, expect, it } from 'vitest';
import { Template } from '@huggingface/jinja';
import { pyStrip, usePythonStrip } from '../../src/data/jinja-strings.js';
import { PreferenceNormalizer } from '../../src/data/preference-rows.js';

describe('Python string strips in chat templates', () => {
  it('pyStrip is Python\'s str.strip / lstrip / rstrip (values from CPython 3.11)', () => {
    expect(pyStrip('\n a\n', '\n', true, false)).toBe(' a\n');
    expect(pyStrip('xxhixx', 'x', true, true)).toBe('hi');
    expect(pyStrip('abc', 'ca', true, true)).toBe('b');
    expect(pyStrip('ab  ', undefined, false, true)).toBe('ab');
    // Python's whitespace: \x1c and \x85 are, U+FEFF is not (JS's trim has it the other way round).
    expect(pyStrip('\ufeffq\x1c\x85', undefined, true, true)).toBe('\ufeffq');
    expect(pyStrip('🙂a🙂', '🙂', true, true)).toBe('a');
    expect(pyStrip('', 'x', true, true)).toBe('');
  });

  it('templates call them with and without characters', () => {
    usePythonStrip();
    const t = new Template("{{ s.lstrip('\\n') }}|{{ s.strip() }}|{{ s.rstrip('\\n ') }}|{{ 'xxhixx'.strip('x') }}|{{ s.strip(none) }}");
    expect(t.render({ s: '\n a \n' })).toBe(' a \n|a|\n a|hi|a');
    expect(() => new Template('{{ s.strip(3) }}').render({ s: 'a' })).toThrow(/strip arg must be None or str/);
    // As Python: one argument at most; empty characters strip nothing (not whitespace).
    expect(() => new Template("{{ s.strip('x', 'y') }}").render({ s: 'xax' })).toThrow(/strip expected at most 1 argument, got 2/);
    expect(new Template("[{{ s.strip('') }}|{{ s.lstrip('') }}]").render({ s: ' a ' })).toBe('[ a | a ]');
    expect(pyStrip(' a ', '', true, true)).toBe(' a ');
  });

  it('the trim filter is jinja2\'s: Python\'s whitespace, or the characters given', () => {
    usePythonStrip();
    // jinja2 3.1: Template("{{ s|trim }}").render(s="\ufeffq\x85 ") is "\ufeffq"; trim("x") strips x.
    expect(new Template('[{{ s | trim }}]').render({ s: '\ufeffq\x85 ' })).toBe('[\ufeffq]');
    expect(new Template('[{{ s | trim }}]').render({ s: ' \x1c a b\t\n' })).toBe('[a b]');
    expect(new Template("[{{ s | trim('x') }}|{{ s | trim(chars='xh') }}|{{ s | trim() }}|{{ s | trim(none) }}]").render({ s: 'xxhixx' }))
      .toBe('[hi|i|xxhixx|xxhixx]');
    expect(() => new Template('{{ s | trim(3) }}').render({ s: 'a' })).toThrow(/trim arg must be None or str/);
    // jinja2 3.1.6: trim('') strips nothing; two arguments, or a keyword other than chars, are a TypeError.
    expect(new Template("[{{ s | trim('') }}]").render({ s: ' a ' })).toBe('[ a ]');
    expect(() => new Template("{{ s | trim('x', 'y') }}").render({ s: 'a' })).toThrow(/trim takes one argument/);
    expect(() => new Template("{{ s | trim(foo='x') }}").render({ s: 'a' })).toThrow(/trim takes one argument/);
    expect(() => new Template("{{ s | trim('x', chars='y') }}").render({ s: 'a' })).toThrow(/trim takes one argument/);
    // An undefined variable as the characters: jinja2 3.1.6 raises "strip arg must be None or str" for both.
    expect(() => new Template('{{ s | trim(u) }}').render({ s: 'a' })).toThrow(/trim arg must be None or str, not UndefinedValue/);
    expect(() => new Template('{{ s.strip(u) }}').render({ s: 'a' })).toThrow(/strip arg must be None or str, not UndefinedValue/);
    // A filter block too.
    expect(new Template('[{% filter trim %}\ufeffq\x85 {% endfilter %}]').render({})).toBe('[\ufeffq]');
    // Other filters and other operands as the package has them.
    expect(new Template('{{ s | upper }}|{{ n | abs }}').render({ s: 'a', n: -2 })).toBe('A|2');
  });

  it('a Qwen3-style template keeps a response\'s leading space', () => {
    const template = "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content.lstrip('\\n') + '<|im_end|>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
    const n = new PreferenceNormalizer({ chatTemplate: template });
    const conv = (a: string) => [{ role: 'user', content: 'Name one.' }, { role: 'assistant', content: a }];
    const row = n.normalize({ chosen: conv(' star "Sirius"'), rejected: conv('\n\nplanet') });
    expect(row.chosen).toBe(' star "Sirius"<|im_end|>\n');
    expect(row.rejected).toBe('planet<|im_end|>\n');
  });
});
